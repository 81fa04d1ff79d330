// The quiz page: one question per page, a countdown from the server's clock, and every answer
// saved as it is given. Unsent answers wait in localStorage, so a closed tab or a lost connection
// loses nothing typed before the deadline; the server alone decides what arrived in time.
import { api, ApiError, firstError } from "./api.js";

const root = document.getElementById("quiz-app");
const attemptId = root.dataset.attempt;
const $ = (id) => document.getElementById(id);
const PENDING_KEY = `preflab:quiz:${attemptId}:pending`;
const SEQ_KEY = "preflab:quiz:seq";
const STRENGTH_KEYS = { a: "significantly_better", s: "better", d: "slightly_better", f: "negligibly_better" };
const LETTERS = "ABCDEFGH";

let state = null; // the attempt as the API returns it
let offset = 0; // server clock minus this browser's clock, in ms
let index = 0; // the question on screen
let answers = new Map(); // question id -> answer in display order
let chosenPrompts = new Map(); // free-writing question id -> Set of prompt positions being written
let pending = loadPending(); // question id -> {value, seq}: given but not yet confirmed by the server
const inflight = new Set();
const again = new Set();
const debounceTimers = {};
let tick = null;
let closing = false;
let locked = false;
let timeUpRetryAt = 0; // the server closes a section a few seconds after its deadline: do not ask it 4 times a second

// ------------------------------------------------------------ saving

function loadPending() {
  try {
    return JSON.parse(localStorage.getItem(PENDING_KEY)) || {};
  } catch (_) {
    return {};
  }
}

function persistPending() {
  if (Object.keys(pending).length) localStorage.setItem(PENDING_KEY, JSON.stringify(pending));
  else localStorage.removeItem(PENDING_KEY);
}

function nextSeq() {
  const seq = Math.max(Number(localStorage.getItem(SEQ_KEY) || 0) + 1, Date.now());
  localStorage.setItem(SEQ_KEY, String(seq));
  return seq;
}

function renderSaveState(offline = false) {
  const waiting = Object.keys(pending).length;
  const box = $("save-state");
  box.classList.toggle("offline", offline && waiting > 0);
  if (!state || !state.current || state.current.status !== "open") box.textContent = "";
  else if (offline && waiting) box.textContent = `Offline: ${waiting} answer${waiting > 1 ? "s" : ""} kept on this device, retrying…`;
  else if (waiting || inflight.size) box.textContent = "Saving…";
  else box.textContent = "All answers saved";
}

function give(questionId, value, { delay = 0 } = {}) {
  if (locked) return;
  answers.set(questionId, value);
  pending[questionId] = { value, seq: nextSeq() };
  persistPending();
  renderSaveState();
  renderNavigator();
  clearTimeout(debounceTimers[questionId]);
  debounceTimers[questionId] = setTimeout(() => flush(questionId), delay);
}

async function flush(questionId) {
  const entry = pending[questionId];
  if (!entry) return;
  if (inflight.has(questionId)) {
    again.add(questionId);
    return;
  }
  inflight.add(questionId);
  renderSaveState();
  try {
    await api("PUT", `/api/attempts/${attemptId}/answers/${questionId}/`, entry, {
      retries: 3,
      onRetry: () => renderSaveState(true),
    });
    if (pending[questionId] && pending[questionId].seq === entry.seq) delete pending[questionId];
    persistPending();
    $("question-error").textContent = "";
  } catch (error) {
    if (error instanceof ApiError && (error.status === 410 || error.status === 409)) {
      // The section closed (time ran out, or it was submitted from another tab): the server has it.
      pending = {};
      persistPending();
      await reload(error.message);
    } else if (error instanceof ApiError && error.status < 500) {
      delete pending[questionId];
      persistPending();
      $("question-error").textContent = firstError(error.payload);
    } else {
      renderSaveState(true);
      setTimeout(() => flush(questionId), 4000);
    }
  } finally {
    inflight.delete(questionId);
    renderSaveState();
    if (again.delete(questionId)) flush(questionId);
  }
}

async function allSaved(timeoutMs = 8000) {
  const until = Date.now() + timeoutMs;
  while (Object.keys(pending).length && Date.now() < until) {
    Object.keys(pending).forEach((id) => {
      clearTimeout(debounceTimers[id]);
      flush(id);
    });
    await new Promise((resolve) => setTimeout(resolve, 150));
  }
  return Object.keys(pending).length === 0;
}

window.addEventListener("online", () => Object.keys(pending).forEach((id) => flush(id)));
window.addEventListener("beforeunload", (event) => {
  if (Object.keys(pending).length) event.preventDefault();
});

// ------------------------------------------------------------ loading

function accept(attempt) {
  state = attempt;
  offset = Date.parse(attempt.server_now) - Date.now();
  locked = false;
  closing = false;
  const current = attempt.current;
  answers = new Map();
  chosenPrompts = new Map();
  const ids = new Set();
  if (current && current.questions) {
    for (const q of current.questions) {
      ids.add(String(q.id));
      answers.set(String(q.id), q.answer);
      if (q.kind === "free_writing") chosenPrompts.set(String(q.id), new Set(Object.keys((q.answer || {}).responses || {})));
    }
  }
  // Answers given on this device that the server has not confirmed yet: show them and send them again.
  for (const [id, entry] of Object.entries(pending)) {
    if (!ids.has(id)) {
      delete pending[id];
      continue;
    }
    answers.set(id, entry.value);
    if (entry.value && entry.value.responses) {
      const set = chosenPrompts.get(id) || new Set();
      Object.keys(entry.value.responses).forEach((k) => set.add(k));
      chosenPrompts.set(id, set);
    }
    flush(id);
  }
  persistPending();
  if (current && current.questions) index = Math.min(index, current.questions.length - 1);
  render();
}

async function reload(message) {
  try {
    const attempt = await api("GET", `/api/attempts/${attemptId}/`, undefined, { retries: 5 });
    const before = state && state.current ? state.current.position : null;
    if (!state || !attempt.current || attempt.current.position !== before) index = 0;
    accept(attempt);
    setStatus(message || "");
  } catch (error) {
    setStatus(`Could not reach the server (${error.message}). Your answers are kept on this device; reload to try again.`);
  }
}

function setStatus(text) {
  $("status").textContent = text || "";
}

// ------------------------------------------------------------ the clock

function effectiveDeadline() {
  const current = state && state.current;
  if (!current) return null;
  if (current.status === "open" && current.deadline) return Date.parse(current.deadline);
  if (state.deadline) return Date.parse(state.deadline);
  return null;
}

function formatLeft(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

function updateClock() {
  const deadline = effectiveDeadline();
  const box = $("countdown");
  if (deadline === null) {
    box.hidden = true;
    return;
  }
  const left = deadline - (Date.now() + offset);
  box.hidden = false;
  const label = state.current.status === "open" ? "left in this section" : "left for the quiz";
  box.textContent = `${formatLeft(left)} ${label}`;
  box.classList.toggle("urgent", left <= 60_000);
  if (left <= 0 && !closing && Date.now() >= timeUpRetryAt) timeIsUp();
}

async function timeIsUp() {
  closing = true;
  locked = true;
  timeUpRetryAt = Date.now() + 5000;
  document.querySelectorAll("#question button, #question textarea, #question input").forEach((el) => (el.disabled = true));
  const current = state.current;
  if (current.status !== "open") {
    setStatus("The time for this quiz ran out.");
    await new Promise((resolve) => setTimeout(resolve, 6000)); // the server's grace for answers on the wire
    await reload("The time for this quiz ran out.");
    return;
  }
  setStatus("Time is up. Sending your last answers and submitting the section as it stands…");
  await allSaved(4000);
  try {
    await api("POST", `/api/attempts/${attemptId}/submit-section/`, { confirm_incomplete: true }, { retries: 2 });
  } catch (_) {
    // 410: the server had already closed it at the deadline; either way it is submitted.
  }
  await reload(`Time ran out for “${current.title}”: it was submitted with the answers saved before the deadline.`);
}

// ------------------------------------------------------------ rendering

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value === true) node.setAttribute(name, "");
    else if (value !== false && value !== null && value !== undefined) node.setAttribute(name, value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function renderSteps() {
  const list = $("section-steps");
  list.replaceChildren(
    ...state.sections.map((s) => {
      const done = ["submitted", "timed_out", "skipped"].includes(s.status);
      const current = state.current && state.current.position === s.position;
      const note = s.status === "timed_out" ? " · time ran out" : s.status === "skipped" ? " · not offered" : "";
      return el(
        "li",
        { class: `${done ? "done" : ""} ${current ? "current" : ""} ${s.status}` },
        el("span", { class: "step-title", text: s.title }),
        el("span", {
          class: "step-meta",
          text: `${s.question_count} question${s.question_count === 1 ? "" : "s"}${s.time_limit_minutes ? ` · ${s.time_limit_minutes} min` : ""}${note}`,
        }),
      );
    }),
  );
}

function render() {
  renderSteps();
  const current = state.current;
  $("intro").hidden = true;
  $("work").hidden = true;
  $("result").hidden = true;
  clearInterval(tick);
  if (!current) {
    $("countdown").hidden = true;
    renderResult();
  } else if (current.status === "pending") {
    renderIntro(current);
  } else {
    renderWork(current);
  }
  if (current) {
    updateClock();
    tick = setInterval(updateClock, 250);
  }
  renderSaveState();
}

function renderIntro(section) {
  $("intro").hidden = false;
  $("intro-title").textContent = `${section.title}`;
  $("intro-instructions").textContent = section.instructions || "";
  const facts = [`${section.question_count} question${section.question_count === 1 ? "" : "s"}`];
  facts.push(section.time_limit_minutes ? `${section.time_limit_minutes} minutes, counted by the server from when you press Start` : "no time limit");
  if (state.deadline) facts.push("the quiz's overall time limit keeps running");
  $("intro-facts").textContent = facts.join(" · ") + ".";
  $("start-section").focus();
}

function isAnswered(question) {
  const value = answers.get(String(question.id));
  if (!value) return false;
  if (question.kind === "rank") return (value.order || []).length === question.responses.length;
  if (question.kind === "compare") return Boolean(value.choice && value.strength);
  if (question.kind === "free_writing") return Object.keys(value.responses || {}).length >= question.min_choices;
  return true;
}

function renderNavigator() {
  if (!state || !state.current || !state.current.questions) return;
  const questions = state.current.questions;
  $("navigator").replaceChildren(
    ...questions.map((q, i) =>
      el("button", {
        type: "button",
        class: `nav-dot ${isAnswered(q) ? "answered" : ""} ${i === index ? "current" : ""}`,
        text: String(i + 1),
        "aria-label": `Question ${i + 1}${isAnswered(q) ? ", answered" : ""}`,
        "aria-current": i === index ? "step" : null,
        onclick: () => go(i),
      }),
    ),
  );
  const done = questions.filter(isAnswered).length;
  $("progress-bar").style.width = `${Math.round((100 * done) / questions.length)}%`;
  $("progress-text").textContent = `Question ${index + 1} of ${questions.length} · ${done} answered`;
  const last = index === questions.length - 1;
  $("prev").disabled = index === 0;
  $("next").hidden = last;
  $("submit-section").hidden = !last;
}

function go(i) {
  const questions = state.current.questions;
  index = Math.max(0, Math.min(questions.length - 1, i));
  $("question-error").textContent = "";
  renderQuestion();
  renderNavigator();
}

function renderWork(section) {
  $("work").hidden = false;
  $("work-instructions").textContent = section.instructions || "No instructions.";
  renderQuestion();
  renderNavigator();
}

function pairBlock(prompt, response) {
  return el(
    "div",
    { class: "pair" },
    el("div", { class: "turn prompt" }, el("span", { class: "who", text: "Prompt" }), el("div", { class: "text", text: prompt })),
    response !== undefined
      ? el("div", { class: "turn assistant" }, el("span", { class: "who", text: "Answer" }), el("div", { class: "text", text: response }))
      : null,
  );
}

function choiceButtons(items, selected, onPick, { keyed = true } = {}) {
  return el(
    "div",
    { class: "choices", role: "radiogroup" },
    ...items.map((item, i) =>
      el(
        "button",
        {
          type: "button",
          role: "radio",
          class: `choice ${item.value === selected ? "on" : ""}`,
          "aria-checked": item.value === selected ? "true" : "false",
          onclick: () => onPick(item.value),
        },
        el("span", { class: "choice-text", text: item.label }),
        keyed && i < 9 ? el("kbd", { text: String(i + 1) }) : null,
      ),
    ),
  );
}

function renderQuestion() {
  const q = state.current.questions[index];
  const id = String(q.id);
  const value = answers.get(id) || null;
  const box = $("question");
  const parts = [el("p", { class: "q-number muted", text: `Question ${index + 1}` }), el("h2", { class: "q-text", text: q.text })];
  const rerender = () => {
    renderQuestion();
    renderNavigator();
  };
  if (q.kind === "multiple_choice") {
    parts.push(
      choiceButtons(
        q.options.map((label, i) => ({ label, value: i })),
        value ? value.choice : null,
        (choice) => {
          give(id, { choice });
          rerender();
        },
      ),
    );
  } else if (q.kind === "label") {
    parts.push(pairBlock(q.prompt, q.response));
    parts.push(
      choiceButtons(
        q.labels.map((label) => ({ label, value: label })),
        value ? value.label : null,
        (label) => {
          give(id, { label });
          rerender();
        },
      ),
    );
  } else if (q.kind === "grade") {
    parts.push(pairBlock(q.prompt, q.response));
    const grades = [];
    for (let g = q.scale[0]; g <= q.scale[1]; g++) grades.push({ label: String(g), value: g });
    const row = choiceButtons(grades, value ? value.grade : null, (grade) => {
      give(id, { grade });
      rerender();
    }, { keyed: false });
    row.classList.add("scale");
    parts.push(el("p", { class: "muted small", text: `${q.scale[0]} = very poor · ${q.scale[1]} = excellent (keys ${q.scale[0]}-${q.scale[1]})` }), row);
  } else if (q.kind === "rank") {
    parts.push(pairBlock(q.prompt));
    const order = (value && value.order) || [];
    parts.push(el("p", { class: "muted small", text: "Click the answers from best to worst (or press their letters). Click a ranked answer to take it out." }));
    parts.push(
      el(
        "div",
        { class: "rank-list" },
        ...q.responses.map((text, i) => {
          const rank = order.indexOf(i);
          return el(
            "button",
            {
              type: "button",
              class: `rank-item ${rank >= 0 ? "ranked" : ""}`,
              onclick: () => {
                const next = rank >= 0 ? order.filter((x) => x !== i) : [...order, i];
                give(id, next.length ? { order: next } : null);
                rerender();
              },
            },
            el("span", { class: "rank-badge", text: rank >= 0 ? `#${rank + 1}` : "–" }),
            el("span", { class: "rank-letter", text: LETTERS[i] }),
            el("span", { class: "text", text }),
          );
        }),
      ),
    );
    parts.push(
      el("p", { class: "rank-summary" },
        el("span", { text: order.length ? `Your order: ${order.map((i) => LETTERS[i]).join(" > ")}` : "Not ranked yet." }),
        order.length ? el("button", { type: "button", class: "link", text: "Clear", onclick: () => { give(id, null); rerender(); } }) : null,
      ),
    );
  } else if (q.kind === "compare") {
    parts.push(pairBlock(q.prompt));
    const chosen = value ? value.choice : null;
    parts.push(
      el(
        "div",
        { class: "responses" },
        ...["a", "b"].map((side, i) =>
          el(
            "article",
            {
              class: `response ${chosen === side ? "chosen" : chosen ? "not-chosen" : ""}`,
              tabindex: "0",
              onclick: () => {
                give(id, { ...(answers.get(id) || {}), choice: side });
                rerender();
              },
            },
            el("header", {}, el("span", { text: `Answer ${i + 1}` }), el("kbd", { text: String(i + 1) })),
            el("div", { class: "text", text: q.responses[i] }),
          ),
        ),
      ),
    );
    const strength = value ? value.strength : null;
    parts.push(
      el(
        "fieldset",
        { class: "strengths" },
        el("legend", { text: "How much better is the chosen answer?" }),
        ...q.strengths.map((s, i) =>
          el(
            "label",
            { class: strength === s.value ? "on" : "" },
            el("input", {
              type: "radio",
              name: `strength-${id}`,
              value: s.value,
              checked: strength === s.value,
              onchange: () => {
                give(id, { ...(answers.get(id) || {}), strength: s.value });
                rerender();
              },
            }),
            el("span", { text: s.label }),
            el("kbd", { text: "asdf"[i] }),
          ),
        ),
      ),
    );
  } else if (q.kind === "free_writing") {
    const chosenSet = chosenPrompts.get(id) || new Set();
    chosenPrompts.set(id, chosenSet);
    const responses = (value && value.responses) || {};
    const count = Object.keys(responses).length;
    const max = q.max_choices;
    const need = q.prompts.length > 1 ? `Choose at least ${q.min_choices} of the ${q.prompts.length} prompts${max ? ` (at most ${max})` : ""} and write a response to each.` : "";
    if (need) parts.push(el("p", { class: "writing-count" }, el("strong", { text: `${count} written` }), el("span", { class: "muted", text: ` · ${need}` })));
    const list = el("div", { class: "prompt-list" });
    q.prompts.forEach((prompt, i) => {
      const key = String(i);
      const open = chosenSet.has(key) || q.prompts.length === 1;
      const text = responses[key] || "";
      const item = el("div", { class: `prompt-item ${open ? "open" : ""}` });
      if (q.prompts.length > 1) {
        item.append(
          el(
            "label",
            { class: "prompt-pick" },
            el("input", {
              type: "checkbox",
              checked: open,
              disabled: !open && max && chosenSet.size >= max,
              onchange: (event) => {
                if (event.target.checked) chosenSet.add(key);
                else {
                  if (text && !confirm("Remove the response you wrote for this prompt?")) {
                    event.target.checked = true;
                    return;
                  }
                  chosenSet.delete(key);
                  const next = { ...responses };
                  delete next[key];
                  give(id, Object.keys(next).length ? { responses: next } : null);
                }
                rerender();
                if (event.target.checked) document.querySelector(`textarea[data-prompt="${key}"]`)?.focus();
              },
            }),
            el("span", { class: "prompt-number", text: `${i + 1}.` }),
            el("span", { text: prompt }),
          ),
        );
      } else {
        item.append(el("div", { class: "turn prompt" }, el("span", { class: "who", text: "Prompt" }), el("div", { class: "text", text: prompt })));
      }
      if (open) {
        const area = el("textarea", {
          rows: "7",
          maxlength: "20000",
          "data-prompt": key,
          placeholder: "Write your response here. It is saved as you type.",
        });
        area.value = text;
        area.addEventListener("input", () => {
          const current = { ...(((answers.get(id) || {}).responses) || {}) };
          if (area.value.trim()) current[key] = area.value;
          else delete current[key];
          give(id, Object.keys(current).length ? { responses: current } : null, { delay: 600 });
          const written = Object.keys(current).length;
          const counter = box.querySelector(".writing-count strong");
          if (counter) counter.textContent = `${written} written`;
        });
        area.addEventListener("blur", () => flush(id));
        item.append(area);
      }
      list.append(item);
    });
    parts.push(list);
  }
  box.replaceChildren(...parts);
  if (locked) box.querySelectorAll("button, textarea, input").forEach((node) => (node.disabled = true));
}

function renderResult() {
  const box = $("result");
  box.hidden = false;
  const result = state.result || {};
  const parts = [];
  if (state.status === "awaiting_review") {
    parts.push(el("h2", { text: "Submitted: waiting for reviewers" }));
    parts.push(el("p", { text: "The ML team grades the written answers against a rubric. Your result appears here and on your Quizzes page when every part is scored." }));
  } else if (state.status === "passed") {
    parts.push(el("h2", { class: "passed-text", text: "Passed" }));
    parts.push(el("p", { text: "Well done. Batches that require this quiz are now open to you." }));
  } else {
    parts.push(el("h2", { class: "failed-text", text: "Not passed" }));
    parts.push(el("p", { text: "Every attempt is kept. Your Quizzes page shows whether another attempt is allowed." }));
  }
  if (result.sections && result.sections.length) {
    parts.push(
      el(
        "table",
        { class: "table scores" },
        el("thead", {}, el("tr", {}, el("th", { text: "Section" }), el("th", { class: "num", text: "Agreed" }), el("th", { class: "num", text: "Average grade" }))),
        el(
          "tbody",
          {},
          ...result.sections.map((s) =>
            el(
              "tr",
              {},
              el("td", { text: s.title + (s.status === "timed_out" ? " (time ran out)" : s.status === "skipped" ? " (not offered)" : "") }),
              el("td", { class: "num", text: s.percent_agreed === null ? "—" : `${s.percent_agreed}%` }),
              el("td", { class: "num", text: s.average_grade === null ? (s.grades_pending ? "being graded" : "—") : `${s.average_grade} / 5` }),
            ),
          ),
        ),
      ),
    );
  }
  if (result.reasons && result.reasons.length) {
    parts.push(el("ul", { class: "reasons" }, ...result.reasons.map((r) => el("li", { text: r }))));
  }
  parts.push(el("p", {}, el("a", { href: root.dataset.listUrl, text: "Back to your quizzes" })));
  box.replaceChildren(...parts);
}

// ------------------------------------------------------------ actions

async function startSection() {
  $("start-section").disabled = true;
  try {
    const attempt = await api("POST", `/api/attempts/${attemptId}/start-section/`, undefined, { retries: 3 });
    index = 0;
    accept(attempt);
    setStatus("");
    $("question").querySelector("button, textarea")?.focus();
  } catch (error) {
    setStatus(error instanceof ApiError ? firstError(error.payload) : "No connection; try again.");
    if (error instanceof ApiError) await reload(firstError(error.payload));
  } finally {
    $("start-section").disabled = false;
  }
}

async function submitSection(confirmed = false) {
  const current = state.current;
  const button = $("submit-section");
  button.disabled = true;
  setStatus("Saving your last answers…");
  try {
    if (!(await allSaved())) {
      setStatus("Some answers are not saved yet (no connection). They are kept here; try submitting again in a moment.");
      return;
    }
    const attempt = await api("POST", `/api/attempts/${attemptId}/submit-section/`, { confirm_incomplete: confirmed }, { retries: 3 });
    index = 0;
    accept(attempt);
    setStatus(`“${current.title}” submitted.`);
  } catch (error) {
    if (error instanceof ApiError && error.payload.field === "confirm_incomplete") {
      setStatus("");
      $("confirm-text").textContent = error.payload.detail.split(". Submit again")[0] + ".";
      $("confirm").showModal();
    } else if (error instanceof ApiError) {
      await reload(firstError(error.payload));
    } else {
      setStatus("No connection; your answers are kept here. Try again in a moment.");
    }
  } finally {
    button.disabled = false;
  }
}

$("start-section").addEventListener("click", startSection);
$("prev").addEventListener("click", () => go(index - 1));
$("next").addEventListener("click", () => go(index + 1));
$("submit-section").addEventListener("click", () => submitSection(false));
$("confirm").addEventListener("close", () => {
  if ($("confirm").returnValue === "submit") submitSection(true);
});

document.addEventListener("keydown", (event) => {
  if (!state || !state.current || document.querySelector("dialog[open]")) return;
  const typing = ["TEXTAREA", "INPUT", "SELECT"].includes(event.target.tagName) && event.target.type !== "radio" && event.target.type !== "checkbox";
  if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
  if (state.current.status === "pending") {
    if (event.key === "Enter") {
      event.preventDefault();
      startSection();
    }
    return;
  }
  if (state.current.status !== "open" || locked) return;
  const q = state.current.questions[index];
  const id = String(q.id);
  const value = answers.get(id) || {};
  const key = event.key;
  const rerender = () => {
    renderQuestion();
    renderNavigator();
  };
  if (key === "ArrowLeft") go(index - 1);
  else if (key === "ArrowRight") go(index + 1);
  else if (/^[1-9]$/.test(key) && q.kind === "multiple_choice" && Number(key) <= q.options.length) {
    give(id, { choice: Number(key) - 1 });
    rerender();
  } else if (/^[1-9]$/.test(key) && q.kind === "label" && Number(key) <= q.labels.length) {
    give(id, { label: q.labels[Number(key) - 1] });
    rerender();
  } else if (/^[0-9]$/.test(key) && q.kind === "grade" && Number(key) >= q.scale[0] && Number(key) <= q.scale[1]) {
    give(id, { grade: Number(key) });
    rerender();
  } else if ((key === "1" || key === "2") && q.kind === "compare") {
    give(id, { ...value, choice: key === "1" ? "a" : "b" });
    rerender();
  } else if (STRENGTH_KEYS[key] && q.kind === "compare") {
    give(id, { ...value, strength: STRENGTH_KEYS[key] });
    rerender();
  } else if (q.kind === "rank" && LETTERS.slice(0, q.responses.length).includes(key.toUpperCase()) && key.length === 1) {
    const i = LETTERS.indexOf(key.toUpperCase());
    const order = value.order || [];
    const next = order.includes(i) ? order.filter((x) => x !== i) : [...order, i];
    give(id, next.length ? { order: next } : null);
    rerender();
  } else return;
  event.preventDefault();
});

reload();
