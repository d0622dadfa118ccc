import json, collections
def test_probe(s3_server, s3, bucket, make_tree, run_sync, distribution, cloudfront):
    files = {f"d{i%3}/sub/f{i}.txt": f"x{i}" for i in range(25)}
    files.update({"index.html": "<h1>", "dir/index.html": "hi", "LICENSE": "mit", "blob.zzunknown": b"\0\1", "a b.css": "x"})
    src = make_tree(files)
    env = {"PLUGIN_BUCKET": bucket, "PLUGIN_SOURCE": str(src), "PLUGIN_TARGET": "/", "PLUGIN_REDIRECTS": json.dumps({"old.html": "/new.html"}),
           "PLUGIN_CLOUDFRONT_DISTRIBUTION": distribution, "PLUGIN_DELETE": "true"}
    p = run_sync(env, cwd=src)
    print(s3_server.ops(bucket), s3_server.ops())
    s3_server.reset()
    p = run_sync(env, cwd=src)
    print(s3_server.ops(bucket), s3_server.ops())
    assert 0
