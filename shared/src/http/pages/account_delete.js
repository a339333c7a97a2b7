
"use strict";
const form = document.getElementById("delete-form");
const statusLine = document.getElementById("status");
const button = document.getElementById("delete-button");

function show(text, outcome) {
  statusLine.textContent = text;
  statusLine.className = outcome;
}

// The API's error bodies: {"detail": "..."} or {"field": ["message", ...], ...}.
function messages(body) {
  if (!body || typeof body !== "object") return "Something went wrong. Please try again.";
  if (typeof body.detail === "string") return body.detail;
  return Object.values(body).flat().filter((m) => typeof m === "string").join(" ");
}

async function call(method, path, payload, access) {
  const headers = { "Content-Type": "application/json", "Accept": "application/json" };
  if (access) headers["Authorization"] = "Bearer " + access;
  const response = await fetch(path, {
    method, headers, body: JSON.stringify(payload), credentials: "omit", cache: "no-store",
  });
  const body = response.status === 204 ? null : await response.json().catch(() => null);
  return { status: response.status, ok: response.ok, body };
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const username = form.elements.username.value;
  const password = form.elements.password.value;
  button.disabled = true;
  show("Deleting your account\u2026", "busy");
  try {
    const login = await call("POST", "/api/auth/login/", { username, password });
    if (!login.ok) {
      show(messages(login.body), "error");
      return;
    }
    const deletion = await call("DELETE", "/api/auth/user/", { password }, login.body.access);
    if (deletion.status === 204) {
      form.hidden = true;
      show("Your account and its data have been deleted.", "done");
      return;
    }
    show(messages(deletion.body), "error");
    // Not deleted: end the session this page started.
    await call("POST", "/api/auth/logout/", { refresh: login.body.refresh }).catch(() => null);
  } catch (e) {
    show("The service could not be reached. Please try again.", "error");
  } finally {
    button.disabled = false;
    form.elements.password.value = "";
  }
});
