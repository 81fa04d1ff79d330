// Dataset pages: follow running builds and exports through the API (the same one the outside world
// uses) and reload once one finishes, so counts, manifests and download buttons appear.
import { api } from "./api.js";

const POLL_MS = 1000;

function show(el, job) {
  const percent = job.status === "done" ? 100 : job.percent;
  el.querySelector("[data-status]").textContent = job.status === "queued" ? "Queued" : job.status === "running" ? "Running" : job.status;
  el.querySelector("[data-status]").className = `status-pill ${job.status}`;
  el.querySelector(".progress span").style.width = `${percent}%`;
  el.querySelector(".progress").setAttribute("aria-valuenow", String(percent));
  const done = job.rows_done ?? job.progress_done;
  const total = job.rows_total ?? job.progress_total;
  el.querySelector("[data-progress-text]").textContent = total ? `${done.toLocaleString()} / ${total.toLocaleString()}` : `${percent}%`;
}

async function follow(el) {
  for (;;) {
    let job;
    try {
      job = await api("GET", el.dataset.poll, undefined, { retries: 3 });
    } catch (_) {
      el.querySelector("[data-progress-text]").textContent = "connection lost, retrying…";
      await new Promise((resolve) => setTimeout(resolve, 5 * POLL_MS));
      continue;
    }
    show(el, job);
    if (job.status === "done" || job.status === "failed") {
      window.location.reload();
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

document.querySelectorAll("[data-poll]").forEach((el) => follow(el));
