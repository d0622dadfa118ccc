// Show the date the page was last modified in the footer, if there is one.
const built = document.getElementById("built");
if (built) {
  const modified = new Date(document.lastModified);
  built.dateTime = modified.toISOString();
  built.textContent = modified.toLocaleDateString();
}

export function version() {
  return "1.0.0";
}
