// The review queue: grade by keyboard (1-5), c for the comment, Enter to save and go to the next answer.
const form = document.getElementById("grade-form");

if (form) {
  const comment = form.querySelector("textarea[name=comment]");
  document.addEventListener("keydown", (event) => {
    if (event.target === comment) {
      if (event.key === "Escape") comment.blur();
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        form.requestSubmit();
      }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (/^[1-5]$/.test(event.key)) {
      form.querySelector(`input[name=score][value="${event.key}"]`).checked = true;
      event.preventDefault();
    } else if (event.key === "c") {
      comment.focus();
      event.preventDefault();
    } else if (event.key === "Enter" && event.target.tagName !== "BUTTON" && event.target.tagName !== "A") {
      event.preventDefault();
      form.requestSubmit();
    }
  });
}
