// A small client for Preflab's own REST API: session cookie + CSRF header, JSON in and out,
// and retries with backoff when the connection drops (never on an answer from the server).

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

export class ApiError extends Error {
  constructor(status, payload) {
    super((payload && payload.detail) || `The server answered ${status}.`);
    this.status = status;
    this.payload = payload || {};
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export async function api(method, url, body, { retries = 0, onRetry } = {}) {
  for (let attempt = 0; ; attempt++) {
    let response;
    try {
      response = await fetch(url, {
        method,
        credentials: "same-origin",
        headers: {
          "Accept": "application/json",
          ...(body !== undefined ? { "Content-Type": "application/json" } : {}),
          ...(method !== "GET" ? { "X-CSRFToken": csrfToken() } : {}),
        },
        body: body !== undefined ? JSON.stringify(body) : undefined,
      });
    } catch (networkError) {
      if (attempt >= retries) throw networkError;
      if (onRetry) onRetry(attempt + 1);
      await sleep(Math.min(8000, 500 * 2 ** attempt));
      continue;
    }
    if (response.status === 204) return null;
    let payload = null;
    try {
      payload = await response.json();
    } catch (_) {
      payload = null;
    }
    if (!response.ok) {
      if (response.status >= 500 && attempt < retries) {
        if (onRetry) onRetry(attempt + 1);
        await sleep(Math.min(8000, 500 * 2 ** attempt));
        continue;
      }
      throw new ApiError(response.status, payload);
    }
    return payload;
  }
}

export function firstError(payload) {
  if (!payload) return "Something went wrong.";
  if (payload.detail) return payload.detail;
  const [field, messages] = Object.entries(payload)[0] || [];
  return field ? `${field}: ${[].concat(messages).join(" ")}` : "Something went wrong.";
}
