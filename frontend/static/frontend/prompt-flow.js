// The rating page in batches where annotators write the prompts: write a prompt, watch the pair being
// sampled, rate it (rate.js), then continue the dialogue or start a new one. A typed prompt is kept in
// localStorage until the server has it, so a reload or a lost connection loses nothing.
import { api, ApiError, firstError } from "./api.js";

const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class PromptFlow {
  // hooks: showPair(assignment), renderContext(turns, {pending}), setStatus(text), fetchWaiting() -> assignment|null
  constructor({ batchId, maxChars, hooks }) {
    this.batchId = batchId;
    this.maxChars = maxChars;
    this.hooks = hooks;
    this.mode = "starting"; // compose | sending | sampling | failed | rating | rated
    this.job = null; // the job on screen while sampling or failed
    this.ownAssignment = null; // the writer's lease on the pair they asked for
    this.continues = null; // {assignment, turns} when the next message continues a dialogue
    this.pollToken = 0;
    this.dom = {
      composer: $("composer"),
      label: $("composer-label"),
      text: $("prompt-text"),
      count: $("prompt-count"),
      error: $("prompt-error"),
      send: $("prompt-submit"),
      sampling: $("sampling"),
      samplingText: $("sampling-text"),
      samplingTime: $("sampling-time"),
      failed: $("sampling-failed"),
      failedText: $("sampling-error"),
      retry: $("sampling-retry"),
      responses: document.querySelector(".responses"),
      form: $("rating-form"),
      after: $("after-rating"),
      continueButton: $("continue-dialogue"),
      afterText: $("after-text"),
    };
    this.bind();
  }

  bind() {
    const d = this.dom;
    d.composer.addEventListener("submit", (event) => {
      event.preventDefault();
      this.send();
    });
    d.text.addEventListener("input", () => {
      localStorage.setItem(this.draftKey(), d.text.value);
      this.renderCount();
      d.error.textContent = "";
    });
    d.retry.addEventListener("click", () => this.retry());
    $("sampling-new").addEventListener("click", () => this.compose());
    $("new-prompt").addEventListener("click", () => this.compose());
    d.continueButton.addEventListener("click", () => this.continueDialogue());
    $("rate-waiting").addEventListener("click", () => this.rateWaiting());
    $("after-waiting").addEventListener("click", () => this.rateWaiting());
  }

  dismissedKey() {
    return `preflab:dismissed-job:${this.batchId}`;
  }

  draftKey() {
    const continues = this.continues ? this.continues.assignment : "new";
    return `preflab:prompt:${this.batchId}:${continues}`;
  }

  // What is on screen: only the parts of the workspace that belong to the current step.
  layout({ composer = false, sampling = false, responses = false, form = false, after = false }) {
    const d = this.dom;
    d.composer.hidden = !composer;
    d.sampling.hidden = !sampling;
    d.responses.hidden = !responses;
    d.form.hidden = !form;
    d.after.hidden = !after;
    $("pair").hidden = false;
    $("done").hidden = true;
  }

  async start() {
    this.hooks.setStatus("Loading…");
    let job = null;
    try {
      job = await api("GET", `/api/generation-jobs/current/?batch=${this.batchId}`, undefined, { retries: 4 });
    } catch (error) {
      this.hooks.setStatus(`Could not load your work: ${error.message} Reload the page to try again.`);
      return;
    }
    this.hooks.setStatus("");
    if (!job) return this.compose();
    if (job.status === "queued" || job.status === "running") return this.track(job);
    if (job.status === "failed") {
      // A failure the annotator already left for a new prompt stays behind.
      if (localStorage.getItem(this.dismissedKey()) === String(job.id)) return this.compose();
      return this.showFailure(job);
    }
    this.ownAssignment = job.assignment_id;
    if (job.lease === "live") return this.pairReady(job.assignment);
    if (job.lease === "rated" && job.continuation) {
      this.hooks.renderContext(job.continuation);
      return this.showRated({ assignment: job.assignment_id, turns: job.continuation, withPair: false });
    }
    return this.compose();
  }

  // `continuing`: the next message of the dialogue just rated, else a new prompt.
  compose({ message = "", continuing = false } = {}) {
    if (!continuing) this.continues = null;
    if (this.mode === "failed" && this.job) localStorage.setItem(this.dismissedKey(), String(this.job.id));
    this.mode = "compose";
    this.job = null;
    this.pollToken++;
    const d = this.dom;
    const next = Boolean(this.continues);
    this.hooks.renderContext(next ? this.continues.turns : []);
    d.label.textContent = next ? "Your next message" : "Write a prompt";
    d.text.placeholder = next
      ? "Reply to the response you chose: ask a follow-up, push back, or change the task."
      : "Ask for anything a helpful assistant should do: a question, a task, a piece of writing…";
    d.text.value = localStorage.getItem(this.draftKey()) || "";
    d.error.textContent = "";
    d.send.disabled = false;
    $("rate-waiting").hidden = next;
    this.renderCount();
    this.layout({ composer: true });
    this.hooks.setStatus(message);
    window.scrollTo({ top: 0 });
    d.text.focus();
  }

  continueDialogue() {
    if (this.mode !== "rated" || !this.continues) return;
    this.compose({ continuing: true });
  }

  renderCount() {
    const n = this.dom.text.value.trim().length;
    this.dom.count.textContent = `${n.toLocaleString()} / ${this.maxChars.toLocaleString()}`;
    this.dom.count.classList.toggle("over", n > this.maxChars);
  }

  async send() {
    if (this.mode !== "compose") return;
    const d = this.dom;
    const text = d.text.value;
    if (!text.trim()) return void (d.error.textContent = "Write a prompt first: it is empty.");
    if (text.trim().length > this.maxChars) {
      const over = text.trim().length - this.maxChars;
      return void (d.error.textContent = `The prompt is ${over.toLocaleString()} characters over the limit of ${this.maxChars.toLocaleString()}. Shorten it.`);
    }
    this.mode = "sending";
    d.send.disabled = true;
    const body = { batch: Number(this.batchId), prompt: text };
    if (this.continues) body.continues = this.continues.assignment;
    try {
      const job = await api("POST", "/api/generation-jobs/", body, {
        retries: 4,
        onRetry: (n) => this.hooks.setStatus(`Connection lost; retrying (${n})… your prompt is kept.`),
      });
      localStorage.removeItem(this.draftKey());
      this.hooks.setStatus("");
      this.track(job);
    } catch (error) {
      this.mode = "compose";
      d.send.disabled = false;
      if (error instanceof ApiError && error.status === 409 && error.payload.job) {
        localStorage.removeItem(this.draftKey());
        return this.track(await api("GET", `/api/generation-jobs/${error.payload.job}/`, undefined, { retries: 4 }));
      }
      d.error.textContent =
        error instanceof ApiError ? firstError(error.payload) : "No connection. Your prompt is kept here; press Enter to try again.";
      d.text.focus();
    }
  }

  // Sampling: the dialogue on top, two placeholder responses, a progress line polled from the job.
  async track(job) {
    this.mode = "sampling";
    this.job = job;
    this.continues = null;
    const token = ++this.pollToken;
    const d = this.dom;
    this.hooks.renderContext(job.context);
    this.hooks.showPlaceholders();
    d.failed.hidden = true;
    d.sampling.classList.remove("failed");
    this.layout({ sampling: true, responses: true });
    const started = Date.now();
    let delay = 300;
    let lost = 0;
    for (;;) {
      this.renderProgress(job, (Date.now() - started) / 1000, lost);
      if (job.status === "done" || job.status === "failed") break;
      await sleep(delay);
      if (token !== this.pollToken) return;
      delay = Math.min(1000, delay + 100);
      try {
        job = await api("GET", `/api/generation-jobs/${job.id}/`);
        lost = 0;
      } catch (error) {
        if (error instanceof ApiError && error.status < 500) return this.hooks.setStatus(firstError(error.payload));
        lost++;
      }
      if (token !== this.pollToken) return;
      this.job = job;
    }
    if (job.status === "failed") return this.showFailure(job);
    this.ownAssignment = job.assignment_id;
    if (job.assignment) return this.pairReady(job.assignment);
    this.compose({ message: "The pair was sampled, but your lease on it ran out before it was shown. Write a new prompt." });
  }

  renderProgress(job, seconds, lost) {
    const d = this.dom;
    const waited = `${Math.floor(seconds)} s`;
    let text = "Sampling two responses…";
    if (job.status === "queued") text = job.ahead ? `Waiting for the sampler (${job.ahead} ahead of you)…` : "Waiting for the sampler…";
    if (lost) text = "Connection lost; still waiting for the pair…";
    d.samplingText.textContent = text;
    d.samplingTime.textContent = waited;
  }

  showFailure(job) {
    this.mode = "failed";
    this.job = job;
    const d = this.dom;
    this.hooks.renderContext(job.context);
    this.layout({ sampling: true });
    d.sampling.classList.add("failed");
    d.samplingText.textContent = "This pair could not be sampled.";
    d.samplingTime.textContent = "";
    d.failed.hidden = false;
    d.failedText.textContent = job.message;
    d.retry.hidden = !job.retryable;
    (job.retryable ? d.retry : $("sampling-new")).focus();
  }

  async retry() {
    if (this.mode !== "failed" || !this.job || !this.job.retryable) return;
    const failedJob = this.job;
    this.mode = "sending";
    try {
      this.track(await api("POST", `/api/generation-jobs/${failedJob.id}/retry/`, undefined, { retries: 4 }));
    } catch (error) {
      this.showFailure({ ...failedJob, message: error instanceof ApiError ? firstError(error.payload) : "No connection; try again." });
    }
  }

  pairReady(assignment) {
    this.mode = "rating";
    this.layout({ responses: true, form: true });
    this.hooks.showPair(assignment);
  }

  async rateWaiting() {
    if (!["compose", "rated"].includes(this.mode)) return;
    this.hooks.setStatus("Looking for a pair waiting for a rating…");
    const assignment = await this.hooks.fetchWaiting();
    if (assignment && assignment.error) return this.hooks.setStatus(`Could not load a pair: ${assignment.error.message}`);
    if (!assignment) {
      if (this.mode === "rated") this.compose({ message: "No pair is waiting for a rating right now; write a prompt." });
      else this.hooks.setStatus("No pair is waiting for a rating right now; write a prompt.");
      return;
    }
    this.pairReady(assignment);
  }

  // Called by rate.js once a rating is stored. `turns` is the dialogue with the chosen response.
  rated({ assignment, turns }) {
    this.showRated({ assignment, turns: assignment === this.ownAssignment ? turns : null, withPair: true });
  }

  showRated({ assignment, turns, withPair }) {
    this.mode = "rated";
    this.continues = turns ? { assignment, turns } : null;
    this.layout({ responses: withPair, after: true });
    this.dom.continueButton.hidden = !turns;
    this.dom.afterText.textContent = turns
      ? "Continue the dialogue from the response you chose, or start a new one."
      : "Write a new prompt, or rate another pair that is waiting.";
    (turns ? this.dom.continueButton : $("new-prompt")).focus();
  }

  expired(message) {
    this.compose({ message });
  }

  // Keys of this flow; true when the key was used here.
  onKeydown(event) {
    const d = this.dom;
    if (event.target === d.text) {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.send();
      } else if (event.key === "Escape") {
        d.text.blur();
      }
      return true;
    }
    if (document.querySelector("dialog[open]") || event.ctrlKey || event.metaKey || event.altKey) return false;
    const key = event.key;
    if (this.mode === "compose") {
      if (key === "w" && !this.continues) return this.consume(event, () => this.rateWaiting());
      if (key === "Enter" || key === "i") return this.consume(event, () => d.text.focus());
    } else if (this.mode === "rated") {
      if (key === "c" && this.continues) return this.consume(event, () => this.continueDialogue());
      if (key === "n") return this.consume(event, () => this.compose());
      if (key === "w") return this.consume(event, () => this.rateWaiting());
    } else if (this.mode === "failed") {
      if ((key === "Enter" || key === "t") && this.job.retryable) return this.consume(event, () => this.retry());
      if (key === "n") return this.consume(event, () => this.compose());
    } else if (this.mode === "sampling" || this.mode === "sending") {
      return !["g", "?"].includes(key);
    }
    return false;
  }

  consume(event, action) {
    event.preventDefault();
    action();
    return true;
  }
}
