// The pharmacy page: check a pack (pasted code or photo), then dispense it.
// Talks to POST /api/drugs/verify and /api/drugs/dispense with the session the main page
// signed in (cookie). No framework; text only through textContent (never innerHTML).
"use strict";

const $ = (id) => document.getElementById(id);
const DISPENSERS = ["pharmacy", "hospital"];
let last = null; // the input of the last check that answered "active"

function body() {
  const file = $("photo").files[0];
  const code = $("code").value.trim();
  if (file) {
    const form = new FormData();
    form.append("image", file, "pack");
    if (code) form.append("code", code);
    return { body: form };
  }
  return { body: JSON.stringify({ code }), headers: { "Content-Type": "application/json" } };
}

async function call(path, init) {
  const res = await fetch(path, { method: "POST", credentials: "same-origin", ...init });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw Object.assign(new Error(data.detail || "request failed"), { data, res });
  return data;
}

function show(kind, word, reason, facts) {
  const box = $("result");
  box.replaceChildren();
  box.className = "verdict " + kind;
  const w = document.createElement("p");
  w.className = "word";
  w.textContent = word;
  const r = document.createElement("p");
  r.className = "reason";
  r.textContent = reason;
  box.append(w, r);
  if (facts) {
    const f = document.createElement("p");
    f.className = "facts";
    f.textContent = facts;
    box.append(f);
  }
  box.setAttribute("aria-busy", "false");
  box.focus();
}

function busy(text) {
  const box = $("result");
  box.className = "verdict busy";
  box.setAttribute("aria-busy", "true");
  box.textContent = text;
  for (const b of document.querySelectorAll("button")) b.disabled = true;
}

function idle() {
  for (const b of document.querySelectorAll("button")) b.disabled = false;
}

const KIND = { active: "ok", expired: "warn" };

async function check(event) {
  event.preventDefault();
  $("hand-out").hidden = true;
  last = null;
  if (!$("code").value.trim() && !$("photo").files[0]) {
    show("bad", "No code", "Paste the pack's code or choose a photo of its DataMatrix.");
    return;
  }
  busy("Checking…");
  try {
    const v = await call("/api/drugs/verify", body());
    const made = v.product ? `${v.product.name} by ${v.product.manufacturer} · ` : "";
    show(KIND[v.status] || "bad", v.status, v.reason,
         `${made}GTIN ${v.gtin} · lot ${v.lot} · expiry ${v.expiry} · serial ${v.serial}`);
    if (v.status === "active" && DISPENSERS.includes(window.me && window.me.kind)) {
      last = body();
      $("hand-out").hidden = false;
    }
  } catch (err) {
    show("bad", "Not checked", err.message);
  } finally {
    idle();
  }
}

async function dispense(event) {
  event.preventDefault();
  if (!last) return;
  busy("Dispensing…");
  try {
    const input = body();
    const patient = $("patient").value.trim();
    if (patient) {
      if (input.body instanceof FormData) input.body.append("patient", patient);
      else input.body = JSON.stringify({ code: $("code").value.trim(), patient });
    }
    const d = await call("/api/drugs/dispense", input);
    const minted = d.token_id != null ? ` Record ${d.token_id} is in the patient's wallet.` : "";
    show(d.alert ? "bad" : "ok", d.alert ? "ALERT" : "dispensed", d.message + minted);
    $("hand-out").hidden = true;
  } catch (err) {
    show("bad", "Refused", err.message);
  } finally {
    idle();
  }
}

async function start() {
  try {
    const res = await fetch("/api/me", { credentials: "same-origin" });
    if (!res.ok) throw new Error("no session");
    window.me = await res.json();
    $("who").textContent = window.me.name || window.me.address;
  } catch {
    $("signin").hidden = false;
    $("check").hidden = true;
    return;
  }
  $("check").addEventListener("submit", check);
  $("hand-out").addEventListener("submit", dispense);
}

start();
