// The variant form: show the fields of the chosen backend only (all of them stay visible without JS).
const radios = document.querySelectorAll('input[name="backend"]');

function showBackend() {
  const chosen = [...radios].find((radio) => radio.checked)?.value;
  document.querySelectorAll("fieldset[data-backend]").forEach((fieldset) => {
    fieldset.hidden = Boolean(chosen) && fieldset.dataset.backend !== chosen;
  });
}

radios.forEach((radio) => radio.addEventListener("change", showBackend));
showBackend();

// An endpoint applies the served model's own template: the Llama 2 choice only applies to local checkpoints.
radios.forEach((radio) =>
  radio.addEventListener("change", () => {
    const template = document.querySelector('select[name="chat_template"]');
    if (radio.checked && radio.value === "openai" && template) template.value = "model";
  }),
);
