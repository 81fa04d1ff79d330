// A <select data-autosubmit> sends its form when changed (instead of an inline onchange handler,
// which the Content-Security-Policy forbids).
for (const select of document.querySelectorAll("select[data-autosubmit]")) {
  select.addEventListener("change", () => select.form.requestSubmit());
}
