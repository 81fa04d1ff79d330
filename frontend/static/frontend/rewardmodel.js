// Reward-model pages. The live run page polls the run through the API (the same one the outside
// world uses), updates its figures in place and swaps in the server-drawn curves; when the run
// finishes it reloads once, so the evaluation tables and the download button appear. The runs list,
// evaluations and best-of-K previews follow the same way; the start-run form fills in a checkpoint's
// suggestions.
import { api } from "./api.js";

const POLL_MS = 1500;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const FINISHED = new Set(["succeeded", "cancelled", "failed"]);
const LABELS = { queued: "Queued", running: "Training", cancelling: "Cancelling", cancelled: "Cancelled", succeeded: "Succeeded", failed: "Failed" };

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const total = Math.round(seconds);
  if (total < 60) return `${total} s`;
  const minutes = Math.floor(total / 60);
  if (minutes < 60) return `${minutes} min ${String(total % 60).padStart(2, "0")} s`;
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, "0")} min`;
}
const fixed = (v, d) => (v === null || v === undefined ? "—" : v.toFixed(d).replace("-", "−"));
const percent = (v) => (v === null || v === undefined ? "—" : `${(100 * v).toFixed(1)}%`);
const sci = (v) => (v === null || v === undefined ? "—" : v.toExponential(1).replace(/e([+-])(\d)$/, "e$10$2"));
const thousands = (v) => (v === null || v === undefined ? "—" : Math.round(v).toLocaleString("en-US"));

function phase(run) {
  if (run.stale) return "Interrupted: its worker stopped sending heartbeats. Resume it to continue from its last checkpoint.";
  if (run.status === "queued") return "Waiting for a training worker…";
  if (run.status === "running" && !run.total_steps) return `Loading the model and tokenizing ${run.n_train_pairs} pairs…`;
  if (run.status === "running" && run.step === run.total_steps) return `Evaluating on ${run.n_eval_pairs} held-out pairs…`;
  if (run.status === "running") return `Training: ${run.n_train_pairs} pairs, ${run.total_steps} optimizer steps.`;
  if (run.status === "cancelling") return "Cancelling: saving a checkpoint at the last completed step…";
  return "";
}

function setText(id, text) {
  const el = document.getElementById(id);
  if (el && el.textContent !== text) el.textContent = text;
}

async function followRun(live) {
  let lastStep = null;
  let lastStatus = live.dataset.statusValue;
  for (;;) {
    await sleep(POLL_MS);
    let run;
    try {
      run = await api("GET", live.dataset.run, undefined, { retries: 3 });
    } catch (_) {
      setText("run-phase", "Connection lost, retrying…");
      await sleep(4 * POLL_MS);
      continue;
    }
    const pill = document.getElementById("run-status");
    pill.textContent = LABELS[run.status] || run.status;
    pill.className = `status-pill ${run.status}`;
    setText("run-phase", phase(run));
    document.getElementById("run-bar").style.width = `${run.percent}%`;
    document.querySelector(".rm-progress .progress").setAttribute("aria-valuenow", String(run.percent));
    setText("run-steps", `step ${run.step} / ${run.total_steps || "?"}`);
    setText("run-eta", duration(run.eta_seconds));
    setText("run-tps", thousands(run.tokens_per_second));
    setText("run-elapsed", duration(run.elapsed_seconds));
    setText("run-loss", fixed(run.loss, 4));
    setText("run-accuracy", percent(run.accuracy));
    setText("run-lr", sci(run.learning_rate));
    setText("run-checkpoint", run.last_checkpoint_step === null ? "—" : `step ${run.last_checkpoint_step}`);
    if (run.step !== lastStep) {
      lastStep = run.step;
      try {
        const response = await fetch(live.dataset.curves, { credentials: "same-origin" });
        if (response.ok) document.getElementById("curves").innerHTML = await response.text();
      } catch (_) {
        /* the next poll tries again */
      }
    }
    const staleChanged = run.stale !== (live.dataset.stale === "true");
    if (FINISHED.has(run.status) || (run.status !== lastStatus && run.status !== "running") || staleChanged) {
      window.location.reload();
      return;
    }
    lastStatus = run.status;
  }
}

async function followPill(el, url, done) {
  for (;;) {
    await sleep(POLL_MS);
    let item;
    try {
      item = await api("GET", url, undefined, { retries: 3 });
    } catch (_) {
      await sleep(4 * POLL_MS);
      continue;
    }
    if (done(item)) {
      window.location.reload();
      return;
    }
    const pill = el.querySelector("[data-status]");
    if (pill) {
      pill.textContent = LABELS[item.status] || item.status;
      pill.className = `status-pill ${item.status}`;
      el.querySelector(".progress span").style.width = `${item.percent}%`;
      el.querySelector("[data-progress-text]").textContent = item.total_steps ? `${item.step} / ${item.total_steps}` : `${item.percent}%`;
    }
  }
}

// A best-of-K preview while a sampling worker has it: poll it, and reload once it is done or failed
// (the page then shows the ranked responses or the error).
async function followPreview(el) {
  const pill = el.querySelector("[data-status]");
  const phase = el.querySelector("[data-phase]");
  for (;;) {
    await sleep(POLL_MS);
    let item;
    try {
      item = await api("GET", el.dataset.previewPoll, undefined, { retries: 3 });
    } catch (_) {
      phase.textContent = "connection lost, retrying…";
      await sleep(4 * POLL_MS);
      continue;
    }
    if (item.status === "done" || item.status === "failed") {
      window.location.reload();
      return;
    }
    pill.textContent = item.status === "queued" ? "Queued" : "Running";
    pill.className = `status-pill ${item.status}`;
    phase.textContent = item.status === "queued" ? "waiting for a sampling worker; the ranking appears here when it is ready."
      : `on ${item.worker || "a sampling worker"}; the ranking appears here when it is ready.`;
  }
}

function startForm(form) {
  // Not form.dataset: on a form that property is the control named "dataset".
  const suggestions = JSON.parse(form.getAttribute("data-suggestions") || "{}");
  const llama2 = JSON.parse(form.getAttribute("data-llama2") || "{}");
  const fill = (values) => {
    for (const [name, value] of Object.entries(values)) {
      const input = form.elements[name];
      if (!input) continue;
      if (input.type === "checkbox") input.checked = Boolean(value);
      else input.value = value === null ? "" : String(value);
    }
  };
  const checkpoint = form.elements.base_checkpoint;
  checkpoint.addEventListener("change", () => fill(suggestions[checkpoint.value] || llama2));
  document.getElementById("use-llama2").addEventListener("click", () => fill(llama2));
  document.getElementById("use-suggested").addEventListener("click", () => fill(suggestions[checkpoint.value] || llama2));
}

function scoreForm(form) {
  const show = () => {
    const mode = form.querySelector("input[name=mode]:checked")?.value || "single";
    form.querySelectorAll("[data-mode]").forEach((el) => { el.hidden = el.dataset.mode !== mode; });
  };
  form.querySelectorAll("input[name=mode]").forEach((input) => input.addEventListener("change", show));
  show();
}

const live = document.getElementById("live");
if (live && live.dataset.finished === "false") followRun(live);
document.querySelectorAll("[data-run-poll]").forEach((el) => followPill(el, el.dataset.runPoll, (run) => FINISHED.has(run.status)));
document.querySelectorAll("[data-evaluation-poll]").forEach((el) => followPill(el, el.dataset.evaluationPoll, (e) => e.status === "done" || e.status === "failed"));
const runForm = document.getElementById("run-form");
if (runForm) startForm(runForm);
const score = document.getElementById("score-form");
if (score) scoreForm(score);
const bestOfK = document.getElementById("best-of-k-form");
if (bestOfK) bestOfK.addEventListener("submit", () => { document.getElementById("best-of-k-submit").disabled = true; });
const preview = document.querySelector("[data-preview-poll]");
if (preview) followPreview(preview);
