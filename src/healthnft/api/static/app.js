// healthnft web wallet: a small single-page app over the JSON API (/docs).
// Sign-in: the server sends an EIP-4361 message, the wallet's key signs it here in
// the browser (ethers.js unlocks the keystore; the passphrase never leaves the page).
// All text from the server is put into the page with textContent, never as HTML.
"use strict";

const PURPOSES = [["treatment", "treatment"], ["research", "research"],
  ["insurance", "an insurance claim"], ["public-health", "public health"]];
const KIND_WORDS = { hospital: "Hospital", pharma: "Pharmaceutical company",
  research: "Research institute", insurer: "Insurer", government: "Government body",
  manufacturer: "Drug manufacturer", pharmacy: "Pharmacy", patient: "Patient" };
const KIND_PLURAL = { hospital: "Hospitals", pharma: "Pharmaceutical companies",
  research: "Research institutes", insurer: "Insurers", government: "Government bodies" };
const CATEGORIES = [["laboratory", "laboratory results"], ["vital-signs", "vital signs"],
  ["immunization", "vaccinations"], ["condition", "conditions"], ["medication", "medications"]];
let me = null;
// The patient's key when this page holds it (a wallet kept on this device, unlocked with
// its passphrase): {address, encPublicKey, encPrivateKey, wallet}. Memory only; with it the
// patient's own records are opened here, never by the server.
let device = null;
let deviceModule = null;
function loadDevice() {  // the ES modules (wallet/crypto.js, keystore.js), on first use
  deviceModule = deviceModule || import("/static/device.js");
  return deviceModule;
}
let viewSeq = 0;  // each route() draws the page only if no newer route() started since

// -- small helpers -------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "for") el.htmlFor = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function say(text, kind) {
  const box = document.getElementById("status");
  box.replaceChildren(text ? h("span", { class: kind || "" }, text) : "");
}

async function api(method, path, body) {
  const opts = { method, headers: {}, credentials: "same-origin" };
  if (body instanceof FormData) opts.body = body;
  else if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const res = await fetch(path, opts);
  let data = null;
  try { data = await res.json(); } catch (_e) { data = null; }
  if (!res.ok) {
    if (res.status === 401 && me && path !== "/api/auth/verify") {  // the session expired
      me = null;
      forgetDeviceKey();
      setTimeout(() => go("#/signin"), 0);
    }
    let msg = (data && (data.detail || data.error)) || `request failed (${res.status})`;
    if (Array.isArray(msg)) msg = "some fields are missing or invalid";
    throw new Error(msg);
  }
  return data;
}

function kindWord(kind) { return KIND_WORDS[kind] || kind; }
function short(addr) { return addr ? `${addr.slice(0, 6)}…${addr.slice(-4)}` : ""; }
function humanDate(value) {
  // The date as the record states it (its own day), not shifted to this device's zone.
  if (!value) return "";
  const m = /^(\d{4})-(\d{2})-(\d{2})/.exec(value);
  if (!m) return value;
  return new Date(Date.UTC(+m[1], +m[2] - 1, +m[3])).toLocaleDateString("en-GB",
    { day: "numeric", month: "short", year: "numeric", timeZone: "UTC" });
}
function until(days) {
  const d = new Date(Date.now() + days * 86400000);
  return d.toLocaleDateString("en-GB", { day: "numeric", month: "long", year: "numeric" });
}
function field(id, labelText, control) {
  control.id = id;
  return h("div", {}, h("label", { for: id }, labelText), control);
}
function options(pairs, selected) {
  return pairs.map(([value, text]) => h("option", { value, selected: value === selected }, text));
}
function page(ctx, title, ...children) {
  if (ctx && ctx.seq !== viewSeq) return;  // a newer route owns the page now
  document.title = `${title} — healthnft`;
  const main = document.getElementById("main");
  main.dataset.view = title === "Sign in" ? "signin" : "";
  main.replaceChildren(h("h1", {}, title), ...children);
  main.focus();
}
function longDate(seconds) {
  return new Date(seconds * 1000).toLocaleDateString("en-GB",
    { day: "numeric", month: "long", year: "numeric" });
}
// Run one action with its button disabled (and marked busy) until it settles.
async function working(button, action) {
  if (button.disabled) return;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try { await action(); } catch (e) { say(e.message, "err"); } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}
function go(hash) { if (location.hash !== hash) location.hash = hash; else route(); }

// -- actions signed on this device ----------------------------------------------

// The node's sentence of what a transaction will do; true once the patient confirms.
function confirmSigning(prompt) {
  return new Promise((resolve) => {
    const sentence = h("p", { id: "tx-prompt", class: "consent" }, prompt);
    const dialog = h("dialog", { "aria-label": "Confirm and sign", "aria-describedby": "tx-prompt" });
    const close = (yes) => { dialog.close(); dialog.remove(); resolve(yes); };
    dialog.addEventListener("cancel", (ev) => { ev.preventDefault(); close(false); });
    dialog.append(h("h2", {}, "Sign this on your device?"), sentence,
      h("p", { class: "muted" }, "Your key signs it here; the node only relays it."),
      h("div", { class: "row" },
        h("button", { type: "button", onclick: () => close(true) }, "Sign and send"),
        h("button", { type: "button", class: "secondary", onclick: () => close(false) }, "Cancel")));
    document.body.append(dialog);
    dialog.showModal();
  });
}

// With the key on this device (``device``), a patient's action is a transaction signed
// here (wallet/sign.js) and relayed by the node; without it, ``hosted()`` as before.
// ``expect``: what the page checks the prepared call against beyond ``args`` (the
// hospital's address when the node is sent its name). Answers the relay's result, or
// null when the patient cancelled (nothing was signed).
async function patientAction(action, args, hosted, expect) {
  if (!device) return hosted();
  const sign = await import("/static/wallet/sign.js");
  const sent = await sign.signAndSend({ api, wallet: device.wallet, action, args, expect,
    confirm: confirmSigning, progress: (text) => say(text) });
  if (!sent) say("Cancelled: nothing was signed.");
  return sent && sent.result;
}

// -- sign-in -------------------------------------------------------------------

async function signIn(keystoreJson, passphrase) {
  say("Unlocking your key on this device…");
  const wallet = await ethers.Wallet.fromEncryptedJson(keystoreJson, passphrase);
  await signInWith(wallet);
}

// Sign in with an unlocked key; ``kept`` = the key is this device's own wallet, so the
// patient's records are opened here from then on.
async function signInWith(wallet, kept) {
  say("Signing the sign-in message…");
  const { message } = await api("GET", `/api/auth/challenge?address=${wallet.address}`);
  const signature = await wallet.signMessage(message);
  me = await api("POST", "/api/auth/verify", { message, signature });
  forgetDeviceKey();
  if (kept) {
    const { keystore } = await loadDevice();
    device = { ...(await keystore.identity(wallet)), wallet };
  }
  say(`Signed in as ${kindWord(me.kind)} ${me.name}`, "ok");
  go(me.kind === "patient" ? "#/records" : me.kind === "hospital" ? "#/mint" : "#/shared");
}

function forgetDeviceKey() {
  if (device && device.encPrivateKey) device.encPrivateKey.fill(0);
  device = null;
}

async function deviceWallets() {
  try {
    const { keystore } = await loadDevice();
    return await keystore.listWallets();
  } catch (_e) { return []; }  // no IndexedDB (private mode): nothing kept here
}

function walletErrorText(e) {
  return e && e.name === "WrongPassphraseError" ? "Wrong passphrase: nothing was changed."
    : e.message;
}

// What a hospital needs to register this wallet: its address and encryption public key.
function publicPart(w) {
  return h("dl", { class: "public-key" },
    h("dt", {}, "Address"), h("dd", { class: "mono" }, w.address),
    h("dt", {}, "Encryption public key (X25519, hex)"), h("dd", { class: "mono" }, w.encPublicKey));
}

// The same, as one healthnft: link (the wallet's signed membership application, public
// values only), which `healthnft participant admit LINK` registers.
async function membershipLink(wallet) {
  let link;
  try {
    const { keystore } = await loadDevice();
    link = await keystore.membershipLink(wallet, await api("GET", "/api/network/membership"));
  } catch (e) {  // the two values above still register the wallet
    return h("p", { class: "warning" }, `The link could not be made here: ${e.message}`);
  }
  return h("div", {}, h("p", {}, "Or give them this link (public values only, signed by your key):"),
    h("p", { class: "mono", id: "membership-link" }, link));
}

function deviceWalletCards(kept, demoPatients) {
  const cards = [];
  if (kept.length) {
    const pick = h("select", {}, kept.map((w) => h("option", { value: w.address }, w.address)));
    const pass = h("input", { type: "password", autocomplete: "current-password" });
    const submit = h("button", { type: "submit" }, "Unlock and sign in");
    cards.push(h("form", { class: "card", "aria-label": "Your wallet on this device",
      onsubmit: (ev) => {
        ev.preventDefault();
        working(submit, async () => {
          const { keystore } = await loadDevice();
          say("Unlocking your key on this device…");
          let wallet;
          try { wallet = await keystore.unlockWallet(pick.value, pass.value); }
          catch (e) { throw new Error(walletErrorText(e)); }
          await signInWith(wallet, true);
        });
      } },
      h("h2", {}, "Your wallet on this device"),
      h("p", {}, "Kept in this browser, encrypted under your passphrase. Your records are "
        + "opened here; the service sends only sealed data."),
      field("device-wallet", "Wallet", pick), field("device-passphrase", "Wallet passphrase", pass),
      submit));
  }
  if (demoPatients.length) {
    const pick = h("select", {}, demoPatients.map((w, i) =>
      h("option", { value: String(i) }, `${w.name} (${short(w.address)})`)));
    const pass = h("input", { type: "password", autocomplete: "new-password", minlength: "8" });
    const submit = h("button", { type: "submit" }, "Use this demo patient");
    cards.push(h("form", { class: "card demo", "aria-label": "Use a demo patient (demo only)",
      onsubmit: (ev) => {
        ev.preventDefault();
        working(submit, async () => {
          if (pass.value.length < 8) throw new Error("choose a passphrase of 8 characters or more");
          const chosen = demoPatients[Number(pick.value)];
          const { keystore } = await loadDevice();
          say("Loading the demo patient's key into this browser…");
          // Handed over now, for this patient only (made from the public demo seed).
          const w = await api("GET", `/api/demo/patients/${chosen.address}/keystore`);
          const wallet = await keystore.importKeystore(JSON.stringify(w.keystore), w.passphrase);
          await keystore.saveWallet(wallet, pass.value);
          await signInWith(wallet, true);
        });
      } },
      h("h2", {}, "Use a demo patient ", h("span", { class: "badge demo-only" }, "demo only")),
      h("p", {}, "Loads a demo patient's key into this browser's storage, encrypted under a "
        + "passphrase you choose, so this page holds the key and opens the records itself. "
        + "Demo keys come from a fixed seed: never for real data."),
      field("demo-patient", "Demo patient", pick),
      field("demo-passphrase", "New passphrase for this device", pass), submit));
  }
  cards.push(createWalletCard(), importWalletCard());
  return cards;
}

function createWalletCard() {
  const pass = h("input", { type: "password", autocomplete: "new-password", minlength: "8" });
  const again = h("input", { type: "password", autocomplete: "new-password" });
  const out = h("div", { "aria-live": "polite" });
  const submit = h("button", { type: "submit" }, "Create wallet");
  return h("details", { class: "card" }, h("summary", {}, "Create a new wallet"),
    h("form", { "aria-label": "Create a new wallet", onsubmit: (ev) => {
      ev.preventDefault();
      working(submit, async () => {
        if (pass.value.length < 8) throw new Error("choose a passphrase of 8 characters or more");
        if (pass.value !== again.value) throw new Error("the two passphrases differ");
        const { keystore } = await loadDevice();
        say("Creating your key in this browser…");
        const wallet = keystore.createWallet();
        const pub = await keystore.saveWallet(wallet, pass.value);
        pass.value = again.value = "";
        out.replaceChildren(h("p", { class: "consent" }, "Your wallet is kept on this device. "
          + "A hospital registers you from these two public values:"), publicPart(pub),
        await membershipLink(wallet),
        h("p", { class: "warning" }, "Write down your recovery phrase and keep it offline: "
          + "with it anyone can take your records, without it a lost device loses them."),
        h("p", { class: "mono", id: "new-phrase" }, keystore.phraseOf(wallet)));
        say("Wallet created on this device.", "ok");
      });
    } },
    h("p", {}, "Your key is made here and never leaves this browser unencrypted."),
    field("new-passphrase", "New wallet passphrase", pass),
    field("new-passphrase-again", "The passphrase again", again), submit, out));
}

function importWalletCard() {
  const file = h("input", { type: "file", accept: ".json,application/json" });
  const phrase = h("textarea", { rows: "2", autocomplete: "off", spellcheck: "false" });
  const pass = h("input", { type: "password", autocomplete: "current-password" });
  const out = h("div", { "aria-live": "polite" });
  const submit = h("button", { type: "submit" }, "Import");
  return h("details", { class: "card" }, h("summary", {}, "Import a keystore file or recovery phrase"),
    h("form", { "aria-label": "Import a wallet", onsubmit: (ev) => {
      ev.preventDefault();
      working(submit, async () => {
        const { keystore } = await loadDevice();
        let wallet;
        if (file.files.length) {
          try { wallet = await keystore.importKeystore(await file.files[0].text(), pass.value); }
          catch (e) { throw new Error(walletErrorText(e)); }
        } else if (phrase.value.trim()) {
          if (pass.value.length < 8) throw new Error("choose a passphrase of 8 characters or more");
          wallet = keystore.importPhrase(phrase.value);
        } else throw new Error("choose a keystore file or type your recovery phrase");
        const pub = await keystore.saveWallet(wallet, pass.value);
        phrase.value = pass.value = "";
        out.replaceChildren(h("p", { class: "consent" }, "Imported: kept on this device."),
          publicPart(pub), await membershipLink(wallet));
        say("Wallet imported on this device.", "ok");
      });
    } },
    field("import-file", "Keystore file (keystore v3)", file),
    field("import-phrase", "Or the recovery phrase", phrase),
    field("import-passphrase", "Passphrase (the file's; or a new one for a phrase)", pass),
    submit, out));
}

async function showWallet(_arg, ctx) {
  if (!device) {
    page(ctx, "Your wallet", h("p", {}, "This session's key is not kept on this device. "
      + "Sign in with a wallet on this device to see and export it."));
    return;
  }
  const { keystore } = await loadDevice();
  const phrase = keystore.phraseOf(device.wallet);
  const spot = h("div", { "aria-live": "polite" });
  page(ctx, "Your wallet", h("section", { class: "card", "aria-label": "Public part" },
    h("p", {}, "A hospital registers you from these public values (they open nothing):"),
    publicPart(device), await membershipLink(device.wallet)),
  h("div", { class: "row" },
    h("button", { type: "button", onclick: async () => {
      const text = await keystore.storedKeystore(device.address);
      const url = URL.createObjectURL(new Blob([text], { type: "application/json" }));
      const a = h("a", { href: url, download: `healthnft-${device.address}.json` });
      document.body.append(a); a.click(); a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
      say("Keystore exported (still encrypted under your passphrase).", "ok");
    } }, "Export keystore file"),
    phrase ? h("button", { type: "button", class: "secondary", onclick: () => {
      spot.replaceChildren(h("p", { class: "warning" }, "Anyone with this phrase holds your "
        + "records. Keep it offline."), h("p", { class: "mono" }, phrase));
    } }, "Show recovery phrase") : null),
  spot, await pinnedNetworkCard());
}

// The chain and contracts this device signs for, pinned at its first use here
// (wallet/pins.js); forgetting them is for a network really redeployed, as one removes
// a host's line from SSH's known_hosts.
async function pinnedNetworkCard() {
  const pins = await import("/static/wallet/pins.js");
  const pin = await pins.pinned().catch(() => null);
  if (!pin) return null;
  const forget = h("button", { type: "button", class: "secondary", onclick: () => working(
    forget, async () => {
      await pins.forget();
      say("Forgotten: the next use here pins this node's network again.", "ok");
      route();
    }) }, "Forget the pinned network");
  return h("section", { class: "card", "aria-label": "Pinned network" },
    h("h2", {}, "Network this device signs for"),
    h("p", {}, "Pinned when this device was first used here: a transaction the node prepares "
      + "for another chain or contract is refused, and nothing is signed."),
    h("dl", { class: "public-key" },
      h("dt", {}, "Chain id"), h("dd", { class: "mono" }, pin.chainId),
      h("dt", {}, "Consent contract"), h("dd", { class: "mono" }, pin.consent || "—"),
      h("dt", {}, "Record contract"), h("dd", { class: "mono" }, pin.token)),
    h("p", { class: "muted" }, "Forget it only if this network was really redeployed."),
    forget);
}

async function showSignIn(_arg, ctx) {
  // Already on screen (a reload, or the same hash twice): keep what the user typed or chose.
  if (document.getElementById("main").dataset.view === "signin") return;
  let demo = [];
  try { demo = await api("GET", "/api/demo/wallets"); } catch (_e) { demo = []; }
  let demoPatients = [];
  try { demoPatients = await api("GET", "/api/demo/patients"); } catch (_e) { demoPatients = []; }
  const kept = await deviceWallets();
  if (me) return;  // signed in while this page was loading: a newer route draws the page
  const file = h("input", { type: "file", accept: ".json,application/json" });
  const pass = h("input", { type: "password", autocomplete: "current-password" });
  const form = h("form", { class: "card", "aria-label": "Sign in with your keystore",
    onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        if (!file.files.length) throw new Error("choose your keystore file first");
        await signIn(await file.files[0].text(), pass.value);
      } catch (e) { say(e.message.includes("password") ? "wrong passphrase" : e.message, "err"); }
    } },
    h("p", {}, "Sign in with your wallet key. Your key is unlocked in this browser; "
      + "the service receives only a signature, never your passphrase."),
    field("keystore", "Keystore file", file),
    field("passphrase", "Passphrase", pass),
    h("button", { type: "submit" }, "Sign in"));
  const parts = [...deviceWalletCards(kept, demoPatients), form];
  if (demo.length) {
    const pick = h("select", {}, demo.map((w, i) =>
      h("option", { value: String(i) }, `${kindWord(w.kind)} — ${w.name} (${short(w.address)})`)));
    parts.unshift(h("form", { class: "card", "aria-label": "Demo sign-in",
      onsubmit: async (ev) => {
        ev.preventDefault();
        const w = demo[Number(pick.value)];
        try { await signIn(JSON.stringify(w.keystore), w.passphrase); }
        catch (e) { say(e.message, "err"); }
      } },
      h("p", {}, "Demo network: sign in as one of its institutions. Their keys come from a "
        + "fixed seed and are locked with the documented passphrase healthnft-demo; a demo "
        + "patient's key is loaded into this browser instead (Use a demo patient). Never use "
        + "them for real data."),
      field("demo-wallet", "Demo wallet", pick),
      h("button", { type: "submit" }, "Sign in with demo wallet")));
  }
  page(ctx, "Sign in", ...parts);
}

// -- patient pages -------------------------------------------------------------

// A patient whose wallet is kept on this device but not unlocked in this page (a reload):
// ask for the passphrase rather than let the server open anything.
async function needsUnlock(ctx) {
  if (device || !me || me.kind !== "patient") return false;
  const kept = await deviceWallets();
  if (!kept.some((w) => w.address.toLowerCase() === me.address.toLowerCase())) return false;
  const pass = h("input", { type: "password", autocomplete: "current-password" });
  const submit = h("button", { type: "submit" }, "Unlock");
  page(ctx, "Unlock your wallet", h("form", { class: "card", onsubmit: (ev) => {
    ev.preventDefault();
    working(submit, async () => {
      const { keystore } = await loadDevice();
      let wallet;
      try { wallet = await keystore.unlockWallet(me.address, pass.value); }
      catch (e) { throw new Error(walletErrorText(e)); }
      device = { ...(await keystore.identity(wallet)), wallet };
      say("Unlocked on this device.", "ok");
      route();
    });
  } }, h("p", {}, "Your records are opened on this device: unlock your wallet to read them."),
  field("unlock-passphrase", "Wallet passphrase", pass), submit));
  return true;
}

// The patient's list when the key is on this device: coarse metadata only (nothing the
// server decrypted); each record is opened here when chosen.
async function showDeviceRecords(ctx) {
  // The first listing after sign-in pins this node's network (wallet/pins.js), if no
  // signature here did yet; best effort: the first signature pins it otherwise.
  import("/static/wallet/pins.js").then((pins) => pins.networkFor(api)).catch(() => {});
  const [rows, mod] = await Promise.all([api("GET", "/api/device/records"), loadDevice()]);
  const groups = new Map();
  for (const r of rows) {
    if (!groups.has(r.category_title)) groups.set(r.category_title, []);
    groups.get(r.category_title).push(r);
  }
  const sections = [...groups.entries()].sort((a, b) => a[0].localeCompare(b[0])).map(
    ([title, items]) => h("section", { "aria-label": title },
      h("h2", {}, `${title} (${items.length})`),
      h("ul", { class: "timeline" }, items.map((r) => h("li", {},
        h("a", { href: `#/record/${r.token_id}`, "data-token": String(r.token_id) },
          r.status === "at-issuer" ? "Held at the node of the institution that issued it"
            : `${mod.kindWord(r.category)} — ${r.resource_type || "record"}`,
          h("span", { class: "date" }, `${r.effective_date ? humanDate(r.effective_date) + " · " : ""}`
            + `token ${r.token_id} · ${r.status}`)))))));
  page(ctx, `Your records (${rows.length})`,
    rows.length ? h("p", { class: "muted" }, "Each record is a token in your wallet. Its "
      + "content stays sealed until you open it: it is decrypted here, on this device.") :
      h("p", {}, "No records in this wallet yet."),
    ...sections);
}

async function showRecords(_arg, ctx) {
  if (await needsUnlock(ctx)) return;
  if (device) { await showDeviceRecords(ctx); return; }
  const rows = await api("GET", "/api/records");
  const groups = new Map();
  for (const r of rows) {
    if (!groups.has(r.category_title)) groups.set(r.category_title, []);
    groups.get(r.category_title).push(r);
  }
  const sections = [...groups.entries()].sort((a, b) => a[0].localeCompare(b[0])).map(
    ([title, items]) => h("section", { "aria-label": title },
      h("h2", {}, `${title} (${items.length})`),
      h("ul", { class: "timeline" }, items.map((r) => h("li", {},
        h("a", { href: `#/record/${r.token_id}`, "data-token": String(r.token_id) },
          r.summary, h("span", { class: "date" }, `token ${r.token_id} · ${r.status}`)))))));
  page(ctx, `Your records (${rows.length})`,
    rows.length ? h("p", { class: "muted" }, "Each record is a token in your wallet; its "
      + "content is encrypted off chain and opened only on your request.") :
      h("p", {}, "No records in this wallet yet."),
    ...sections);
}

// The patient's own record, opened on this device from its sealed form. Anything that does
// not match (proof, root, ciphertext, key, commitment) shows "tampered", never the record.
async function showDeviceRecord(id, ctx) {
  page(ctx, `Record ${id}`, h("p", { class: "muted", id: "opening", role: "status",
    "aria-busy": "true" }, "Opening on this device: checking against the chain and decrypting…"));
  const mod = await loadDevice();
  const sealed = await api("GET", `/api/records/${id}/sealed`);
  const root = await mod.batchRoot(sealed.token_contract, id);  // from the chain, by this page
  let opened;
  try {
    opened = await mod.openSealed(sealed, device.encPrivateKey, root);
  } catch (e) {
    if (!(e instanceof mod.TamperedError)) throw e;
    page(ctx, `Record ${id}`,
      h("p", {}, h("span", { class: "badge tampered", id: "badge" }, "tampered")),
      h("p", { class: "warning", id: "tampered" }, "This record does not match what the chain "
        + "holds for it, so it is not shown. Nothing was changed; tell the hospital that issued it."));
    return;
  }
  const category = opened.meta.category || sealed.category;
  const rec = opened.resource;
  const study = mod.studyListing(opened.meta);
  if (study) { renderRecord(id, ctx, deviceStudyView(id, sealed, opened, study, mod, ctx)); return; }
  const v = sealed.superseded_by
    ? { badge: "superseded", reason: `superseded: corrected by token ${sealed.superseded_by}` }
    : { badge: "authentic", reason: "checked on this device: proof against the chain's batch "
      + "root, ciphertext, key and commitment match" };
  const view = rec && typeof rec === "object" ? {
    token_id: Number(id), owned: true, category, category_title: mod.categoryTitle(category),
    resource_type: rec.resourceType || sealed.resource_type,
    date: mod.recordDate(rec) || opened.meta.effective_date,
    summary: mod.summary(rec, category, humanDate), measurements: mod.measurements(rec),
    attachments: mod.attachments(rec), resource: rec, resource_json: opened.text,
    verification: v, on_device: true,
  } : {
    token_id: Number(id), owned: true, category, category_title: mod.categoryTitle(category),
    resource_type: sealed.resource_type, date: opened.meta.effective_date,
    summary: `${mod.kindWord(category)} — ${sealed.resource_type}`, measurements: [],
    attachments: [], resource: null, resource_json: opened.text, verification: v, on_device: true,
  };
  renderRecord(id, ctx, view);
}

// An imaging study opened here: its record (manifest, series) is checked and decrypted
// like any other; its images, a stream of encrypted chunks, are decrypted here on
// request (checked chunk by chunk and instance by instance) and offered as the original
// DICOM files. A study too large for the page opens with the CLI wallet.
function deviceStudyView(id, sealed, opened, study, mod, ctx) {
  const date = opened.meta.effective_date;
  const v = sealed.superseded_by
    ? { badge: "superseded", reason: `superseded: corrected by token ${sealed.superseded_by}` }
    : { badge: "authentic", reason: "checked on this device: proof against the chain's batch "
      + "root, ciphertext, key and commitment match; the images are checked when decrypted" };
  const size = Number((opened.meta.stream || {}).plaintext_size || 0);
  const chunks = study.chunks === 1 ? "1 encrypted chunk" : `${study.chunks} encrypted chunks`;
  const cli = `healthnft wallet show ${id} --out study-${id}/ writes the DICOM files, `
    + `--out study-${id}.png the first image.`;
  const files = h("div", { id: "study-files", "aria-live": "polite" });
  const decrypt = h("button", { type: "button", class: "secondary", onclick: () => working(
    decrypt, async () => {
      files.replaceChildren("Decrypting the images on this device…");
      let parts;
      try {
        parts = await mod.openStudy(id, opened, sealed.commitment, (done, total) => {
          files.textContent = `Decrypting the images on this device… ${done} of ${total} chunks`;
        });
      } catch (e) {
        if (!(e instanceof mod.TamperedError)) { files.replaceChildren(); throw e; }
        if (ctx.seq !== viewSeq) return;
        files.replaceChildren(h("p", {}, h("span", { class: "badge tampered" }, "tampered")),
          h("p", { class: "warning", id: "study-tampered" }, "The images do not match what the "
            + "record holds for them, so they are not shown. Nothing was changed; tell the "
            + "hospital that issued it."));
        return;
      }
      if (ctx.seq !== viewSeq) return;
      files.replaceChildren(h("p", {}, "Checked and decrypted on this device: the original "
        + "DICOM files (a DICOM viewer opens them)."),
      h("ul", { "aria-label": "Image files" }, parts.map((bytes, i) => h("li", {},
        h("a", { href: URL.createObjectURL(new Blob([bytes], { type: "application/dicom" })),
          download: `study-${id}-${i + 1}.dcm` },
        `Image file ${i + 1} (DICOM, ${Math.max(1, Math.round(bytes.length / 1000))} kB)`)))));
    }) }, "Decrypt the images on this device");
  const inPage = size > 0 && size <= mod.STUDY_IN_PAGE_MAX;
  return {
    token_id: Number(id), owned: true, category: "imaging", category_title: mod.categoryTitle("imaging"),
    resource_type: opened.meta.resource_type || sealed.resource_type, date,
    summary: ["Imaging study", study.headline.split(" · ")[0], humanDate(date)].filter(Boolean).join(" — "),
    study: { headline: study.headline, series: study.series, image: null,
      note: inPage
        ? `Its images are kept in ${chunks}: decrypt them on this device below, or with `
          + `the CLI wallet on your computer: ${cli}`
        : `Its images are kept in ${chunks}, too large to decrypt in this page. Open them `
          + `with the CLI wallet on your computer: ${cli}`,
      extra: inPage ? [decrypt, files] : [] },
    measurements: [], attachments: [], resource: opened.resource, resource_json: opened.text,
    verification: v, on_device: true,
  };
}

// What a form needs to name a record: with the key on this device, only the listing's
// coarse metadata (the server is not asked to open it); otherwise the server's view.
async function recordHeadline(id) {
  if (!device) return api("GET", `/api/records/${id}`);
  const [rows, mod] = await Promise.all([api("GET", "/api/device/records"), loadDevice()]);
  const row = rows.find((r) => String(r.token_id) === String(id));
  if (!row) throw new Error("no record you may open has this id");
  return { ...row, summary: `${mod.kindWord(row.category)} — ${row.resource_type}, token ${id}` };
}

async function showRecord(id, ctx) {
  if (await needsUnlock(ctx)) return;
  if (device) { await showDeviceRecord(id, ctx); return; }
  renderRecord(id, ctx, await api("GET", `/api/records/${id}`));
}

function renderRecord(id, ctx, rec) {
  const v = rec.verification;
  const parts = [
    h("p", {}, h("span", { class: `badge ${v.badge}`, id: "badge" }, v.badge), " ",
      h("span", { class: "muted" }, v.reason)),
    h("p", {}, `${rec.category_title} · ${rec.resource_type} · ${humanDate(rec.date)}`),
  ];
  const newer = v.badge === "superseded" && /corrected by token (\d+)/.exec(v.reason || "");
  if (newer) {
    parts.push(h("p", {}, h("a", { href: `#/record/${newer[1]}` }, "Open the corrected record")));
  }
  if (rec.study) {
    parts.push(h("p", {}, rec.study.headline));
    if (rec.study.note) parts.push(h("p", { class: "muted", id: "study-images" }, rec.study.note));
    if (rec.study.extra) parts.push(...rec.study.extra);
    if (rec.study.image) {
      parts.push(h("figure", {}, h("img", { src: rec.study.image, class: "record-image",
        alt: "First image of the study" }), h("figcaption", {}, "First image (windowed for CT)")));
    }
    parts.push(h("table", { class: "responsive", "aria-label": "Series" },
      h("thead", {}, h("tr", {}, ["Series", "Modality", "Description", "Images"].map(
        (t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rec.study.series.map((r) => h("tr", {},
        h("td", { "data-label": "Series" }, r.number), h("td", { "data-label": "Modality" }, r.modality),
        h("td", { "data-label": "Description" }, r.description || "—"),
        h("td", { "data-label": "Images" }, r.instances))))));
  }
  if (rec.measurements.length) {
    parts.push(h("table", { class: "responsive", "aria-label": "Measured values" },
      h("thead", {}, h("tr", {}, ["Test", "Value", "Reference range", "Interpretation"].map(
        (t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rec.measurements.map((m) => h("tr", {},
        h("td", { "data-label": "Test" }, m.test), h("td", { "data-label": "Value" }, m.value),
        h("td", { "data-label": "Reference range" }, m.range || "—"),
        h("td", { "data-label": "Interpretation" }, m.interpretation || "—"))))));
  }
  for (const a of rec.attachments || []) {
    if (a.kind === "text") {
      parts.push(h("section", { "aria-label": a.title || "Note" },
        h("h2", {}, a.title || "Note"), h("pre", { class: "note" }, a.text)));
    } else if (a.kind === "image") {
      parts.push(h("figure", {}, h("img", { src: a.src, alt: a.title || "Image from the record",
        class: "record-image" }), a.title ? h("figcaption", {}, a.title) : ""));
    } else {
      parts.push(h("p", { class: "muted" }, `Attached file: ${a.title || a.content_type || "unnamed"}`
        + " (not shown here)"));
    }
  }
  parts.push(h("details", {}, h("summary", {}, "The full record (FHIR R4)"),
    // resource_json keeps each decimal as sent (5.60); JSON.parse would make it 5.6.
    h("pre", {}, rec.resource_json || JSON.stringify(rec.resource, null, 2))));
  // The card is made by the service from the record's content: not for a record opened here.
  if (rec.owned && !rec.on_device && ["immunization", "laboratory"].includes(rec.category)) {
    const spot = h("div", { id: "health-card", "aria-live": "polite" });
    parts.push(h("button", { class: "secondary", onclick: async () => {
      try {
        spot.replaceChildren("Signing the card…");
        const card = await api("GET", `/api/records/${id}/health-card`);
        spot.replaceChildren(h("p", {}, "SMART Health Card, signed by the hospital that "
          + "issued the record: any SMART Health Card verifier can check it."),
        ...card.qr_png.map((src) => h("img", { src, width: "280", height: "280",
          alt: "SMART Health Card QR code" })));
      } catch (e) { spot.replaceChildren(); say(e.message, "err"); }
    } }, "Show SMART Health Card"), spot);
  }
  if (rec.owned) {
    parts.push(h("div", { class: "row" },
      h("a", { class: "button", href: `#/share/${id}` }, "Share"),
      me.kind === "patient" && v.badge === "authentic"
        ? h("a", { class: "button", href: `#/allow-correction/${id}` }, "Allow a correction") : null,
      h("a", { class: "button", href: `#/transfer/${id}` }, "Transfer"),
      h("a", { class: "button", href: `#/burn/${id}` }, "Burn")));
  }
  page(ctx, rec.summary, ...parts);
}

async function showShare(id, ctx) {
  const [people, rec] = await Promise.all([api("GET", "/api/participants"),
    recordHeadline(id)]);
  if (!people.length) { page(ctx, "Share", h("p", {}, "No institution to share with yet.")); return; }
  const who = h("select", {}, people.map((p) =>
    h("option", { value: p.address }, `${kindWord(p.kind)} — ${p.name}`)));
  const purpose = h("select", {}, options(PURPOSES, "research"));
  const days = h("input", { type: "number", min: "1", max: "3650", value: "30" });
  const scope = h("select", {}, options([["one", "only this record"],
    ["category", `all my ${rec.category_title.toLowerCase()}, including future ones`]], "one"));
  const sentence = h("p", { class: "consent", id: "consent-sentence", "aria-live": "polite" });
  const update = () => {
    const p = people.find((x) => x.address === who.value);
    const what = scope.value === "one" ? `your record “${rec.summary}”`
      : `all your ${rec.category_title.toLowerCase()}`;
    const purposeText = PURPOSES.find((x) => x[0] === purpose.value)[1];
    sentence.textContent = `${p.name} (${kindWord(p.kind).toLowerCase()}) will be able to read `
      + `${what} for ${purposeText} until ${until(Number(days.value) || 0)}.`;
  };
  for (const el of [who, purpose, days, scope]) el.addEventListener("input", update);
  update();
  page(ctx, "Share a record",
    h("form", { class: "card", onsubmit: async (ev) => {
      ev.preventDefault();
      const body = { to: who.value, purpose: purpose.value, days: Number(days.value) };
      if (scope.value === "one") body.token_ids = [Number(id)]; else body.category = rec.category;
      await working(ev.submitter || ev.target.querySelector("button"), async () => {
        const g = await patientAction(body.token_ids ? "share" : "share-category", body,
          () => api("POST", "/api/grants", body));
        if (!g) return;
        say(`Shared: grant ${g.grant_id}.`, "ok");
        go("#/grants");
      });
    } },
    field("share-to", "Who", who), field("share-purpose", "Purpose", purpose),
    field("share-days", "For how many days", days), field("share-scope", "What", scope),
    sentence,
    h("p", { class: "muted" }, "You can revoke this at any time. Revoking stops future "
      + "access; it cannot take back what they already saw or copied."),
    h("button", { type: "submit" }, "Share")));
}

async function showGrants(_arg, ctx) {
  const rows = await api("GET", "/api/grants");
  page(ctx, "Shared by you",
    h("p", { class: "muted" }, "Revoking stops future access; it cannot take back what a "
      + "reader already saw."),
    rows.length ? h("table", { class: "responsive" },
      h("thead", {}, h("tr", {}, ["Grant", "With", "What", "Purpose", "Until", "State", ""].map(
        (t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows.map((g) => h("tr", {},
        h("td", { "data-label": "Grant" }, `#${g.grant_id}`),
        h("td", { "data-label": "With" }, `${g.grantee_name || short(g.grantee)} (${kindWord(g.grantee_kind)})`),
        h("td", { "data-label": "What" }, g.category ? `all ${g.category} records`
          : `record${g.token_ids.length === 1 ? "" : "s"} ${g.token_ids.join(", ")}`),
        h("td", { "data-label": "Purpose" }, g.purpose),
        h("td", { "data-label": "Until" }, humanDate(new Date(g.expires * 1000).toISOString())),
        h("td", { "data-label": "State" }, g.state),
        h("td", {}, g.state === "active" ? h("button", { class: "secondary",
          "aria-label": `Revoke grant ${g.grant_id}`, onclick: (ev) => working(ev.currentTarget,
            async () => {
              const done = await patientAction("revoke", { grant_id: g.grant_id },
                () => api("DELETE", `/api/grants/${g.grant_id}`));
              if (!done) return;
              say(`Grant ${g.grant_id} revoked.`, "ok");
              route();
            }) }, "Revoke") : ""))))) : h("p", {}, "You have not shared anything."));
}

async function showRequests(_arg, ctx) {
  const { incoming, outgoing } = await api("GET", "/api/requests");
  const rowOf = (r, actions) => h("tr", {},
    h("td", { "data-label": "Request" }, `#${r.request_id}`),
    h("td", { "data-label": "From" }, short(r.requester)),
    h("td", { "data-label": "What" }, r.token_id ? `record ${r.token_id}` : `all ${r.category} records`),
    h("td", { "data-label": "Purpose" }, `${r.purpose}, ${r.days} days`),
    h("td", { "data-label": "Reason" }, r.reason || "—"),
    h("td", { "data-label": "Reward" }, r.reward_wei ? `${r.reward_wei} wei` : "—"),
    h("td", { "data-label": "State" }, r.state),
    h("td", {}, actions));
  const act = (r) => r.state !== "pending" ? "" : [
    h("button", { "aria-label": `Approve request ${r.request_id}`, onclick: (ev) => working(
      ev.currentTarget, async () => {
        const done = await patientAction("approve-request", { request_id: r.request_id },
          () => api("POST", `/api/requests/${r.request_id}/approve`, {}));
        if (done) { say("Approved.", "ok"); route(); }
      }) }, "Approve"),
    h("button", { class: "secondary", "aria-label": `Decline request ${r.request_id}`,
      onclick: (ev) => working(ev.currentTarget, async () => {
        const done = await patientAction("decline-request", { request_id: r.request_id },
          () => api("POST", `/api/requests/${r.request_id}/decline`));
        if (done) { say("Declined.", "ok"); route(); }
      }) }, "Decline")];
  const table = (rows, actions) => h("table", { class: "responsive" },
    h("thead", {}, h("tr", {}, ["Request", "From", "What", "Purpose", "Reason", "Reward", "State", ""]
      .map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows.map((r) => rowOf(r, actions(r)))));
  const parts = [];
  if (me.kind === "patient") {
    parts.push(h("h2", {}, "Asked of you"),
      incoming.length ? table(incoming, act) : h("p", {}, "No requests."));
  } else {
    parts.push(requestForm());
  }
  if (outgoing.length) parts.push(h("h2", {}, "Asked by you"), table(outgoing, () => ""));
  page(ctx, "Requests", ...parts);
}

function requestForm() {
  const owner = h("input", { type: "text", placeholder: "0x…", autocomplete: "off" });
  const purpose = h("select", {}, options(PURPOSES, "research"));
  const category = h("select", {}, options(CATEGORIES, "laboratory"));
  const days = h("input", { type: "number", min: "1", max: "3650", value: "30" });
  const reason = h("textarea", { rows: "2", maxlength: "500" });
  return h("form", { class: "card", "aria-label": "Request access", onsubmit: async (ev) => {
    ev.preventDefault();
    try {
      const r = await api("POST", "/api/requests", { owner: owner.value.trim(),
        purpose: purpose.value, category: category.value, days: Number(days.value),
        reason: reason.value });
      say(`Request ${r.request_id}: ${r.state}.`, "ok");
      route();
    } catch (e) { say(e.message, "err"); }
  } },
  h("h2", {}, "Ask a patient for access"),
  field("req-owner", "Patient's wallet address", owner),
  field("req-category", "Records", category), field("req-purpose", "Purpose", purpose),
  field("req-days", "For how many days", days),
  field("req-reason", "Why (shown to the patient, never put on the chain)", reason),
  h("button", { type: "submit" }, "Send request"));
}

async function showLog(_arg, ctx) {
  const rows = await api("GET", "/api/access-log");
  page(ctx, "Who opened your records",
    h("p", { class: "muted" }, "Every key release for your records is logged on the chain."),
    rows.length ? h("table", { class: "responsive" },
      h("thead", {}, h("tr", {}, ["When", "Record", "Who", "Purpose"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows.map((r) => h("tr", {},
        h("td", { "data-label": "When" }, new Date(r.time * 1000).toLocaleString("en-GB")),
        h("td", { "data-label": "Record" }, `token ${r.token_id}`),
        h("td", { "data-label": "Who" }, `${r.grantee_name || short(r.grantee)} ${r.grantee_kind ? "(" + kindWord(r.grantee_kind) + ")" : ""}`),
        h("td", { "data-label": "Purpose" }, r.purpose))))) : h("p", {}, "Nobody has opened your records."));
}

async function showTransfer(id, ctx) {
  const people = await api("GET", "/api/participants");
  const who = h("select", {}, people.map((p) => h("option", { value: p.address }, `${kindWord(p.kind)} — ${p.name}`)));
  page(ctx, `Transfer record ${id}`,
    h("form", { class: "card", onsubmit: async (ev) => {
      ev.preventDefault();
      await working(ev.submitter || ev.target.querySelector("button"), async () => {
        const done = await patientAction("transfer", { token_id: Number(id), to: who.value },
          () => api("POST", `/api/records/${id}/transfer`, { to: who.value }));
        if (!done) return;
        say(`Record ${id} transferred.`, "ok");
        go("#/records");
      });
    } },
    field("transfer-to", "New owner", who),
    h("p", { class: "warning" }, "The record will belong to them, re-encrypted so only they "
      + "can open it; you will no longer be able to. A transfer cannot take back what anyone "
      + "already saw."),
    h("button", { type: "submit" }, "Transfer")));
}

function showBurn(id, ctx) {
  const sure = h("input", { type: "checkbox" });
  page(ctx, `Burn record ${id}`,
    h("form", { class: "card", onsubmit: async (ev) => {
      ev.preventDefault();
      if (!sure.checked) { say("Tick the box to confirm.", "err"); return; }
      await working(ev.submitter || ev.target.querySelector("button"), async () => {
        const done = await patientAction("burn", { token_id: Number(id), confirm: true },
          () => api("POST", `/api/records/${id}/burn`, { confirm: true }));
        if (!done) return;
        say(`Record ${id} burned: nobody can recover it.`, "ok");
        go("#/records");
      });
    } },
    h("p", { class: "warning", id: "burn-warning" }, "Burning is irreversible. The token is "
      + "destroyed and the record and every copy of its key are deleted: nobody — you, the "
      + "hospital, anyone you shared it with — can ever recover it. It cannot take back what "
      + "a reader already saw."),
    h("div", { class: "row check" }, sure, h("label", { for: "burn-sure" }, "I understand this cannot be undone")),
    h("button", { type: "submit", class: "danger" }, "Burn for good")));
  sure.id = "burn-sure";
}

function catWord(category) {
  const known = CATEGORIES.find((c) => c[0] === category);
  return known ? known[1] : String(category).replace(/-/g, " ") + " records";
}

function policySentence(p) {
  const who = KIND_PLURAL[p.kind] || kindWord(p.kind);
  const copies = p.deidentified_only ? "de-identified copies of " : "";
  const what = p.category ? `${copies}your ${catWord(p.category)}`
    : `${copies}any single record of yours they ask for`;
  const purpose = (PURPOSES.find((x) => x[0] === p.purpose) || [p.purpose, p.purpose])[1];
  return `${who} may read ${what} for ${purpose}, for up to ${p.days} day${p.days === 1 ? "" : "s"}, `
    + `until ${longDate(p.valid_until)} — automatically.`;
}

async function showPolicies(_arg, ctx) {
  const rows = await api("GET", "/api/policies");
  const now = Date.now() / 1000;
  const live = rows.filter((p) => p.active && p.valid_until > now);
  const gone = rows.filter((p) => !(p.active && p.valid_until > now));
  const item = (p) => {
    const actions = h("div", { class: "row" });
    const ask = h("button", { type: "button", class: "secondary",
      "aria-label": `Remove policy ${p.policy}`, onclick: () => {
        const yes = h("button", { type: "button", class: "danger",
          "aria-label": `Yes, remove policy ${p.policy}`, onclick: () => working(yes, async () => {
            say(`Removing policy ${p.policy}…`);
            const done = await patientAction("remove-policy", { number: p.policy },
              () => api("DELETE", `/api/policies/${p.policy}`));
            if (!done) return;
            say(`Policy ${p.policy} removed: such requests wait for your answer again.`, "ok");
            route();
          }) }, "Yes, remove");
        const keep = h("button", { type: "button", class: "secondary", onclick: () => {
          actions.replaceChildren(ask); ask.focus();
        } }, "Keep it");
        actions.replaceChildren(h("p", { class: "warning", id: `confirm-policy-${p.policy}` },
          "Remove this policy? Matching requests will wait for your answer again. Grants it "
          + "already made stay until you revoke them."), yes, keep);
        yes.focus();
      } }, "Remove");
    actions.append(ask);
    return h("li", { class: "card", "data-policy": String(p.policy) },
      h("p", { class: "consent" }, `Policy ${p.policy}: ${policySentence(p)}`), actions);
  };
  const parts = [
    h("p", { class: "muted" }, "A policy answers matching access requests for you, at once and "
      + "without asking. Removing it stops that; grants it already made stay until you revoke them."),
    h("h2", {}, `In force (${live.length})`),
    live.length ? h("ul", { class: "plain", "aria-label": "Policies in force" }, live.map(item))
      : h("p", {}, "No policy: every request waits for your answer."),
    policyForm(),
  ];
  if (gone.length) {
    parts.push(h("h2", {}, "No longer in force"),
      h("ul", { class: "plain muted", "aria-label": "Policies no longer in force" }, gone.map((p) =>
        h("li", {}, `Policy ${p.policy} (${p.active ? "expired" : "removed"}): `
          + policySentence(p).replace(" — automatically.", ".")))));
  }
  page(ctx, "Policies", ...parts);
}

function policyForm() {
  const kind = h("select", {}, options(Object.entries(KIND_PLURAL), "research"));
  const purpose = h("select", {}, options(PURPOSES, "research"));
  const category = h("select", {}, options([...CATEGORIES,
    ["", "single records, one request at a time"]], "laboratory"));
  const days = h("input", { type: "number", min: "1", max: "3650", value: "30", required: true });
  const valid = h("input", { type: "number", min: "1", max: "3650", value: "365", required: true });
  const deid = h("input", { type: "checkbox", id: "policy-deid" });
  const sentence = h("p", { class: "consent", id: "policy-sentence", "aria-live": "polite" });
  const update = () => {
    sentence.textContent = policySentence({ kind: kind.value, purpose: purpose.value,
      category: category.value || null, days: Number(days.value) || 0,
      deidentified_only: deid.checked,
      valid_until: Date.now() / 1000 + (Number(valid.value) || 0) * 86400 });
  };
  for (const el of [kind, purpose, category, days, valid, deid]) {
    el.addEventListener("input", update);
    el.addEventListener("change", update);
  }
  update();
  const submit = h("button", { type: "submit" }, "Add policy");
  return h("form", { class: "card", "aria-label": "Add a policy", onsubmit: (ev) => {
    ev.preventDefault();
    working(submit, async () => {
      say("Adding the policy…");
      const body = { kind: kind.value, purpose: purpose.value, category: category.value || null,
        days: Number(days.value), valid_days: Number(valid.value), deidentified_only: deid.checked };
      const r = await patientAction("add-policy", body, () => api("POST", "/api/policies", body));
      if (!r) return;
      say(`Policy ${r.policy} added.`, "ok");
      route();
    });
  } },
  h("h2", {}, "Add a policy"),
  field("policy-kind", "Who asks", kind), field("policy-purpose", "For what purpose", purpose),
  field("policy-category", "Which records", category),
  field("policy-days", "Longest access to grant (days)", days),
  field("policy-valid", "The policy applies for (days)", valid),
  h("div", { class: "row check" }, deid, h("label", { for: "policy-deid" }, "Only de-identified copies")),
  sentence, submit);
}

async function showAllowCorrection(id, ctx) {
  const [people, rec] = await Promise.all([api("GET", "/api/participants"),
    recordHeadline(id)]);
  const hospitals = people.filter((p) => p.kind === "hospital");
  if (!hospitals.length) {
    page(ctx, "Allow a correction", h("p", {}, "No hospital is registered on this network."));
    return;
  }
  const who = h("select", {}, hospitals.map((p) => h("option", { value: p.name }, p.name)));
  const sentence = h("p", { class: "consent", id: "correction-sentence", "aria-live": "polite" });
  const update = () => {
    sentence.textContent = `${who.value} may replace this record with a corrected version; `
      + "the old one stays, marked superseded.";
  };
  who.addEventListener("change", update);
  update();
  const submit = h("button", { type: "submit" }, "Allow correction");
  page(ctx, "Allow a correction",
    h("form", { class: "card", onsubmit: (ev) => {
      ev.preventDefault();
      working(submit, async () => {
        say("Recording your approval on the chain…");
        // Signed here, the page checks the hospital by the address it listed for that name.
        const chosen = hospitals.find((p) => p.name === who.value);
        const done = await patientAction("approve-amendment",
          { token_id: Number(id), issuer: who.value },
          () => api("POST", `/api/records/${id}/amendment-approval`, { issuer: who.value }),
          { issuer_address: chosen && chosen.address });
        if (!done) return;
        say(`${who.value} may now correct record ${id}.`, "ok");
        go(`#/record/${id}`);
      });
    } },
    h("p", {}, `Record: ${rec.summary} (token ${id})`),
    field("correction-hospital", "Hospital", who),
    sentence,
    h("p", { class: "muted" }, "Only one correction is allowed; the hospital mints the "
      + "corrected record into your wallet."),
    submit));
}

// -- institution pages ---------------------------------------------------------

async function showShared(_arg, ctx) {
  const rows = await api("GET", "/api/shared");
  page(ctx, `Shared with you (${rows.length})`,
    rows.length ? h("ul", { class: "timeline" }, rows.map((r) => h("li", {},
      h("a", { href: `#/record/${r.token_id}`, "data-token": String(r.token_id) },
        // A record held at the issuer's node: only the chain is known of it until opened.
        r.held_at_issuer ? r.summary : `${r.category_title} — ${r.resource_type}`,
        h("span", { class: "date" }, `${r.effective_date ? humanDate(r.effective_date) + " · " : ""}token ${r.token_id} · patient ${short(r.owner)}`)))))
      : h("p", {}, "Nothing is shared with you right now."),
    h("p", {}, h("a", { href: "#/requests" }, "Ask a patient for access")));
}

// A patient's wallet shows a healthnft: link (public values it signed): the hospital
// registers the patient from it, then mints into that address.
function registerPatientCard(patientField) {
  const link = h("textarea", { rows: "3", autocomplete: "off", spellcheck: "false" });
  const submit = h("button", { type: "submit" }, "Register patient");
  return h("form", { class: "card", "aria-label": "Register a patient", onsubmit: (ev) => {
    ev.preventDefault();
    working(submit, async () => {
      if (!link.value.trim()) throw new Error("paste the link the patient's wallet shows");
      const done = await api("POST", "/api/patients", { link: link.value.trim() });
      link.value = "";
      patientField.value = done.address;
      say(`Registered ${done.address} as a patient.`, "ok");
    });
  } }, h("p", {}, "A new patient? Paste the healthnft: link their wallet shows (public "
    + "values only, signed by their key)."),
  field("register-link", "Patient's healthnft: link", link), submit);
}

function showMint(_arg, ctx) {
  const patient = h("input", { type: "text", placeholder: "0x…", autocomplete: "off" });
  const files = h("input", { type: "file", multiple: true, accept: ".json,application/json,application/fhir+json" });
  const bar = h("progress", { max: "1", value: "0", "aria-label": "Minting progress", hidden: true });
  page(ctx, "Mint records", registerPatientCard(patient),
    h("form", { class: "card", onsubmit: async (ev) => {
      ev.preventDefault();
      const body = new FormData();
      body.append("patient", patient.value.trim());
      for (const f of files.files) body.append("files", f, f.name);
      try {
        bar.hidden = false;
        say("Validating and minting…");
        let job = await api("POST", "/api/mint", body);
        while (job.state === "running") {
          await new Promise((r) => setTimeout(r, 300));
          job = await api("GET", `/api/jobs/${job.job_id}`);
          bar.max = job.total || 1; bar.value = job.done;
        }
        if (job.state === "failed") throw new Error(job.error);
        bar.value = bar.max;
        const warnings = job.result.warnings || [];
        say(`Minted ${job.result.records_minted} records (${job.result.already_minted} already minted).`
          + (warnings.length ? ` ${warnings.length} warning(s): ${warnings.slice(0, 5).join("; ")}`
            + (warnings.length > 5 ? "; …" : "") : ""), "ok");
      } catch (e) { say(e.message, "err"); }
    } },
    h("p", {}, "FHIR R4 files (bundles or resources) are validated, attested, encrypted and "
      + "minted into the patient's wallet in one transaction per batch."),
    field("mint-patient", "Patient's wallet address", patient),
    field("mint-files", "FHIR files", files), bar,
    h("button", { type: "submit" }, "Mint")));
}

function showAmend(_arg, ctx) {
  const token = h("input", { type: "number", min: "0", inputmode: "numeric", required: true,
    autocomplete: "off" });
  const file = h("input", { type: "file", accept: ".json,application/json,application/fhir+json",
    required: true });
  const result = h("p", { id: "amend-result", "aria-live": "polite", hidden: true });
  const submit = h("button", { type: "submit" }, "Submit correction");
  page(ctx, "Correct a record",
    h("form", { class: "card", onsubmit: (ev) => {
      ev.preventDefault();
      working(submit, async () => {
        result.hidden = true;
        try {
          if (!file.files.length) throw new Error("choose the corrected FHIR file first");
          const body = new FormData();
          body.append("file", file.files[0], file.files[0].name);
          say("Validating and minting the correction…");
          const r = await api("POST", `/api/records/${Number(token.value)}/amend`, body);
          result.className = "consent";
          result.textContent = `Token ${r.token_id} corrects token ${r.supersedes}.`;
          say(`Token ${r.token_id} corrects token ${r.supersedes}.`, "ok");
        } catch (e) {
          result.className = "warning";
          result.textContent = e.message;
          throw e;
        } finally { result.hidden = false; }
      });
    } },
    h("p", {}, "Correct a record your hospital issued, once its owner has allowed it: the "
      + "corrected FHIR resource is minted into the owner's wallet as a new token, and the old "
      + "token stays, marked superseded."),
    field("amend-token", "Token id of the record to correct", token),
    field("amend-file", "Corrected FHIR resource (one JSON file)", file),
    submit, result));
}

// -- routing -------------------------------------------------------------------

const NAV = {
  patient: [["#/records", "Records"], ["#/grants", "Sharing"], ["#/requests", "Requests"], ["#/policies", "Policies"], ["#/log", "Access log"]],
  hospital: [["#/mint", "Mint"], ["#/amend", "Correct a record"], ["#/shared", "Shared with me"], ["#/requests", "Requests"], ["/pharmacy.html", "Check a pack"]],
  pharmacy: [["/pharmacy.html", "Check a pack"], ["#/shared", "Shared with me"], ["#/requests", "Requests"]],
  other: [["#/shared", "Shared with me"], ["#/requests", "Requests"]],
};

function drawNav() {
  const nav = document.getElementById("nav");
  const who = document.getElementById("who");
  if (!me) { nav.hidden = true; who.textContent = ""; return; }
  const links = [...(NAV[me.kind] || NAV.other), ...(device ? [["#/wallet", "Wallet"]] : [])];
  nav.replaceChildren(...links.map(([href, text]) => h("a", { href,
    "aria-current": location.hash.startsWith(href) ? "page" : null }, text)),
  h("a", { href: "#/signout" }, "Sign out"));
  nav.hidden = false;
  who.textContent = `${kindWord(me.kind)} ${me.name} · ${short(me.address)}`;
}

async function route() {
  const ctx = { seq: ++viewSeq };
  const [, name, arg] = (location.hash || "#/").split("/");
  try {
    if (!me) {  // a reload: the session cookie may still be good
      let found = null;
      try { found = await api("GET", "/api/me"); } catch (_e) { found = null; }
      if (ctx.seq !== viewSeq) return;  // a newer route (maybe a sign-in) took over
      me = found;
    }
    if (name === "signout") {
      try { await api("POST", "/api/auth/logout"); } catch (_e) { /* already out */ }
      me = null; forgetDeviceKey(); say("Signed out."); go("#/signin"); return;
    }
    drawNav();
    if (!me) { await showSignIn(undefined, ctx); return; }
    const views = { records: showRecords, record: showRecord, share: showShare,
      grants: showGrants, requests: showRequests, log: showLog, transfer: showTransfer,
      burn: showBurn, shared: showShared, mint: showMint, policies: showPolicies,
      "allow-correction": showAllowCorrection, amend: showAmend, wallet: showWallet };
    const view = views[name] || (me.kind === "patient" ? showRecords : me.kind === "hospital" ? showMint : showShared);
    await view(arg, ctx);
  } catch (e) {
    if (ctx.seq === viewSeq) say(e.message, "err");
  }
}

window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", route);
