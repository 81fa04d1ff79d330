// The rating page: one pair on screen, the next one already leased and loaded, every choice
// reachable by keyboard, and a draft in localStorage so a reload or lost connection loses nothing.
// In batches where annotators write the prompts, prompt-flow.js leads from prompt to pair and back.
import { api, ApiError, firstError } from "./api.js";
import { PromptFlow } from "./prompt-flow.js";

const root = document.getElementById("rate-app");
const batchId = root.dataset.batch;
const isSafety = root.dataset.focus === "safety";
const writesPrompts = root.dataset.promptMode === "annotator";
const $ = (id) => document.getElementById(id);
const form = $("rating-form");
const slots = { left: $("response-left"), right: $("response-right") };
const STRENGTH_KEYS = { a: "significantly_better", s: "better", d: "slightly_better", f: "negligibly_better" };

let current = null; // the assignment on screen
let upcoming = null; // a promise of the next assignment (prefetched)
let state = null; // {chosen, strength, safety: {left, right}, rationale, key}
let shownAt = 0;
let submitting = false;

const draftKey = (assignment) => `preflab:draft:${assignment}`;

function newKey() {
  return crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(16).slice(2)}`;
}

function saveDraft() {
  if (current) localStorage.setItem(draftKey(current.assignment), JSON.stringify(state));
}

function loadDraft(assignment) {
  try {
    return JSON.parse(localStorage.getItem(draftKey(assignment)));
  } catch (_) {
    return null;
  }
}

function setStatus(text) {
  $("status").textContent = text || "";
}

function renderContext(turns) {
  const box = $("context");
  box.replaceChildren();
  box.hidden = turns.length === 0;
  turns.forEach((turn, i) => {
    const div = document.createElement("div");
    const isPrompt = i === turns.length - 1 && turn.role === "user";
    div.className = `turn ${turn.role}${isPrompt ? " prompt" : ""}`;
    const who = document.createElement("span");
    who.className = "who";
    const names = { user: isPrompt ? "Prompt" : "User", assistant: "Assistant", system: "System" };
    who.textContent = names[turn.role] || turn.role;
    const text = document.createElement("div");
    text.className = "text";
    text.textContent = turn.content;
    div.append(who, text);
    box.append(div);
  });
}

function safetyLabel() {
  const { chosen, safety } = state;
  if (!chosen) return { label: "", message: "" };
  const other = chosen === "left" ? "right" : "left";
  const mine = safety[chosen];
  const theirs = safety[other];
  if (mine === null || theirs === null) {
    return { label: "", message: "Mark each response safe or unsafe (z and x)." };
  }
  if (mine && !theirs) return { label: "chosen_safe_other_unsafe", message: "Safety: the chosen response is safe, the other is not." };
  if (mine && theirs) return { label: "both_safe", message: "Safety: both responses are safe." };
  if (!mine && !theirs) return { label: "both_unsafe", message: "Safety: both responses are unsafe." };
  return {
    label: null,
    message:
      "You chose the response you marked unsafe over one you marked safe. The protocol prefers safer " +
      "responses, so this cannot be submitted: choose the safe response, or check the safety marks.",
  };
}

function render() {
  for (const [slot, el] of Object.entries(slots)) {
    el.classList.toggle("chosen", state.chosen === slot);
    el.classList.toggle("not-chosen", state.chosen !== null && state.chosen !== slot);
    el.setAttribute("aria-pressed", state.chosen === slot ? "true" : "false");
    const mark = el.querySelector(".safety-mark");
    mark.hidden = !isSafety;
    mark.querySelectorAll("button").forEach((b) => {
      b.classList.toggle("on", String(state.safety[slot]) === b.dataset.safe);
    });
  }
  form.querySelectorAll('input[name="strength"]').forEach((input) => {
    input.checked = input.value === state.strength;
  });
  if (document.activeElement !== form.rationale) form.rationale.value = state.rationale;
  const summary = $("safety-summary");
  if (isSafety) {
    const { label, message } = safetyLabel();
    summary.hidden = !message;
    summary.textContent = message;
    summary.classList.toggle("forbidden", label === null);
  }
  $("form-error").textContent = "";
}

function show(assignment) {
  current = assignment;
  const draft = loadDraft(assignment.assignment);
  state = draft || { chosen: null, strength: "", safety: { left: null, right: null }, rationale: "", key: newKey() };
  saveDraft();
  renderContext(assignment.context);
  for (const el of Object.values(slots)) el.classList.remove("pending");
  slots.left.querySelector(".text").textContent = assignment.left.text;
  slots.right.querySelector(".text").textContent = assignment.right.text;
  // A prefetched pair carries the count from before the last submit: never count down.
  const today = $("today-count");
  if (assignment.ratings_today !== undefined) today.textContent = Math.max(Number(today.textContent), assignment.ratings_today);
  $("pair").hidden = false;
  $("done").hidden = true;
  setStatus("");
  render();
  shownAt = performance.now();
  window.scrollTo({ top: 0 });
  // Annotators who write prompts get their own pair next: nothing to prefetch from the queue.
  if (!writesPrompts) upcoming = fetchNext([assignment.assignment]);
}

// While a pair is sampled: the two response boxes stay where the responses will appear.
function showPlaceholders() {
  current = null;
  for (const el of Object.values(slots)) {
    el.classList.add("pending");
    el.classList.remove("chosen", "not-chosen");
    el.querySelector(".text").textContent = "";
    el.querySelector(".safety-mark").hidden = true;
  }
}

function fetchNext(exclude) {
  const query = exclude.length ? `?exclude=${exclude.join(",")}` : "";
  return api("POST", `/api/batches/${batchId}/next/${query}`, undefined, { retries: 4 }).catch((error) => {
    return { error };
  });
}

async function advance(nextPromise) {
  const next = await nextPromise;
  if (next && next.error) {
    setStatus(`Could not load the next pair: ${next.error.message} Reload the page to try again.`);
    return;
  }
  if (!next) {
    current = null;
    $("pair").hidden = true;
    $("done").hidden = false;
    return;
  }
  show(next);
}

function choose(slot) {
  state.chosen = slot;
  saveDraft();
  render();
}

function toggleSafety(slot) {
  const value = state.safety[slot];
  state.safety[slot] = value === null ? true : !value;
  saveDraft();
  render();
}

async function submit() {
  if (!current || submitting) return;
  const error = $("form-error");
  if (!state.chosen) return void (error.textContent = "Choose the better response first (1 or 2).");
  if (!state.strength) return void (error.textContent = "Choose how much better it is (a, s, d or f).");
  let safety = "";
  if (isSafety) {
    const { label, message } = safetyLabel();
    if (!label) return void (error.textContent = message);
    safety = label;
  }
  submitting = true;
  $("submit").disabled = true;
  const chosenResponse = state.chosen === "left" ? current.left.id : current.right.id;
  const body = {
    assignment: current.assignment,
    chosen_response: chosenResponse,
    strength: state.strength,
    safety_label: safety,
    rationale: state.rationale,
    seconds_spent: Math.round((performance.now() - shownAt) / 100) / 10,
    idempotency_key: state.key,
  };
  try {
    await api("POST", "/api/ratings/", body, {
      retries: 6,
      onRetry: (n) => setStatus(`Connection lost; retrying (${n})… nothing you chose is lost.`),
    });
    localStorage.removeItem(draftKey(current.assignment));
    $("today-count").textContent = Number($("today-count").textContent) + 1;
    if (flow) {
      const rated = current;
      const chosen = state.chosen === "left" ? rated.left : rated.right;
      current = null;
      flow.rated({ assignment: rated.assignment, turns: [...rated.context, { role: "assistant", content: chosen.text }] });
    } else {
      await advance(upcoming);
    }
  } catch (e) {
    if (e instanceof ApiError && e.status === 410) {
      localStorage.removeItem(draftKey(current.assignment));
      if (flow) {
        current = null;
        flow.expired(e.message);
        return;
      }
      setStatus(e.message);
      await advance(upcoming);
    } else {
      error.textContent = e instanceof ApiError ? firstError(e.payload) : "No connection. Your rating is kept here; press Enter to try again.";
    }
  } finally {
    submitting = false;
    $("submit").disabled = false;
  }
}

for (const [slot, el] of Object.entries(slots)) {
  el.addEventListener("click", (event) => {
    if (!current) return; // being sampled, or already rated
    const button = event.target.closest(".safety-mark button");
    if (button) {
      state.safety[slot] = button.dataset.safe === "true";
      saveDraft();
      render();
      return;
    }
    if (window.getSelection().toString()) return; // selecting text is not choosing
    choose(slot);
  });
}

form.addEventListener("change", (event) => {
  if (event.target.name === "strength") {
    state.strength = event.target.value;
    saveDraft();
    render();
  }
});
form.rationale.addEventListener("input", () => {
  state.rationale = form.rationale.value;
  saveDraft();
});
form.addEventListener("submit", (event) => {
  event.preventDefault();
  submit();
});

document.addEventListener("keydown", (event) => {
  if (event.target === form.rationale) {
    if (event.key === "Escape") form.rationale.blur();
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      submit();
    }
    return;
  }
  if (flow && flow.onKeydown(event)) return;
  if (document.querySelector("dialog[open]") || event.ctrlKey || event.metaKey || event.altKey) return;
  const key = event.key;
  if (key === "g" || key === "?") {
    $(key === "g" ? "guidelines" : "keys").showModal();
    event.preventDefault();
    return;
  }
  if (!current) return;
  if (key === "1" || key === "ArrowLeft") choose("left");
  else if (key === "2" || key === "ArrowRight") choose("right");
  else if (STRENGTH_KEYS[key]) {
    state.strength = STRENGTH_KEYS[key];
    saveDraft();
    render();
  } else if (isSafety && key === "z") toggleSafety("left");
  else if (isSafety && key === "x") toggleSafety("right");
  else if (key === "r") {
    event.preventDefault();
    form.rationale.focus();
  } else if (key === "Enter") {
    event.preventDefault();
    submit();
  } else return;
  event.preventDefault();
});

$("guidelines-open").addEventListener("click", () => $("guidelines").showModal());
$("keys-open").addEventListener("click", () => $("keys").showModal());

const flow = writesPrompts
  ? new PromptFlow({
      batchId,
      maxChars: Number(root.dataset.maxPromptChars),
      hooks: {
        showPair: show,
        renderContext,
        showPlaceholders,
        setStatus,
        fetchWaiting: () => fetchNext([]),
      },
    })
  : null;

if (flow) {
  flow.start();
} else {
  setStatus("Loading your pair…");
  advance(fetchNext([]));
}
