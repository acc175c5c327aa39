// The patient's own records, opened on this device (loaded by app.js on demand).
//
// The node answers /api/records/{id}/sealed with sealed bytes only; wallet/crypto.js
// checks the Merkle proof against the batch root this page reads from the chain (POST
// /rpc, eth_call of the token contract), the ciphertext's digest,
// unwraps the batch key with the patient's X25519 key, decrypts and recomputes the salted
// commitment. The plaintext exists only here, in memory, and is never sent anywhere.
// The description helpers mirror healthnft.services.describe (the server's view of a
// record it opens for a grantee), so both views read alike.

import { TamperedError, bytes, openRecord } from "./wallet/crypto.js";
import { instances, openStream, streamIndex } from "./wallet/stream.js";

export { TamperedError };
export * as keystore from "./wallet/keystore.js";

function b64(text) {
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** One read-only JSON-RPC call to the chain through the node's /rpc window. */
async function rpc(method, params) {
  const res = await fetch("/rpc", { method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }) });
  let data = null;
  try { data = await res.json(); } catch { data = null; }
  if (!res.ok || !data || data.error || typeof data.result !== "string") {
    throw new Error(`could not read the chain (${(data && data.error && data.error.message)
      || res.status})`);
  }
  return data.result;
}

const TOKEN_VIEWS = ["function batch_of(uint256 token_id) view returns (uint256)",
  "function batch_root(uint256 batch_id) view returns (bytes32)"];

/**
 * The Merkle root of the batch that minted ``tokenId``, read from the chain by this page
 * (eth_call of the token contract), not taken from the node's answer.
 * @returns {Promise<string>} 0x… 32 bytes
 */
export async function batchRoot(contract, tokenId) {
  const iface = new globalThis.ethers.Interface(TOKEN_VIEWS);
  const call = async (fn, args) => iface.decodeFunctionResult(fn, await rpc("eth_call",
    [{ to: contract, data: iface.encodeFunctionData(fn, args) }, "latest"]))[0];
  return call("batch_root", [await call("batch_of", [BigInt(tokenId)])]);
}

/**
 * Open the record whose sealed form ``sealed`` (/api/records/{id}/sealed) holds, against
 * ``root``, the batch root read from the chain (:func:`batchRoot`).
 * @returns {Promise<{meta: object, text: string, resource: object|null}>}
 * @throws {TamperedError} when anything does not match (shown as "tampered")
 */
export async function openSealed(sealed, encPrivateKey, root) {
  let ciphertext;
  try { ciphertext = b64(sealed.ciphertext); } catch { throw new TamperedError("ciphertext is not base64"); }
  const { header, canonical } = await openRecord({
    tokenId: String(sealed.token_id), ciphertext, sealedDek: sealed.sealed_dek,
    wrappedKek: sealed.wrapped_key, keyId: sealed.key_id, commitment: sealed.commitment,
    proof: sealed.proof, root, blobDigest: sealed.blob_digest,
    encPrivateKey: bytes(encPrivateKey),
  });
  const text = new TextDecoder().decode(canonical);
  let resource = null;
  try { resource = JSON.parse(text); } catch { resource = null; }
  return { meta: header.meta || {}, text, resource };
}

/**
 * An imaging study's headline and series, from its opened record's metadata (as
 * healthnft.wallet.files.study_listing); null for any other record. The images are not
 * here: they are a stream of encrypted chunks, opened by the CLI wallet.
 * @returns {{headline: string, chunks: number,
 *   series: Array<{number: string, modality: string, description: string, instances: string}>}|null}
 */
export function studyListing(meta) {
  const info = meta && meta.imaging;
  if (!info || typeof info !== "object") return null;
  const what = ["modalities", "body_parts"].filter((k) => Array.isArray(info[k]) && info[k].length)
    .map((k) => info[k].join(", "));
  const size = Number(info.size || 0);
  const counts = `${info.series_count || 0} series, ${info.instance_count || 0} instances, `
    + `${info.frame_count || 0} frames, `
    + (size >= 1e6 ? `${(size / 1e6).toFixed(1)} MB` : `${(size / 1e3).toFixed(0)} kB`);
  const series = (Array.isArray(info.series) ? info.series : []).map((row) => ({
    number: String(row.number ?? Number(row.position || 0) + 1),
    modality: String(row.modality || ""), description: String(row.description || ""),
    instances: String(row.instance_count || 0),
  }));
  const chunks = Array.isArray(meta.stream && meta.stream.chunks) ? meta.stream.chunks.length : 0;
  return { headline: [...what, counts].join(" · "), series, chunks };
}

/** The largest study this page decrypts in memory; a larger one opens in the CLI wallet. */
export const STUDY_IN_PAGE_MAX = 256 * 1024 * 1024;

/**
 * The DICOM instances of the imaging study ``tokenId``, decrypted here: its chunks are
 * fetched from the node (sealed bytes, GET /api/records/{id}/chunks/{digest}) and each is
 * checked (digest, AEAD with the stream key from the opened record, position, last
 * flag, commitment), then every instance against the manifest's hash.
 * @param {{meta: object, resource: object}} opened what openSealed answered
 * @param {string} commitment the record's commitment (hex), as checked by openSealed
 * @returns {Promise<Uint8Array[]>}
 * @throws {TamperedError} when anything does not match (nothing is returned then)
 */
export async function openStudy(tokenId, opened, commitment, progress) {
  const index = streamIndex(opened.meta);
  const fetchChunk = async (digest) => {
    const res = await fetch(`/api/records/${tokenId}/chunks/${digest}`, { credentials: "same-origin" });
    if (!res.ok) throw new Error(`could not fetch a chunk of the study (${res.status})`);
    return res.arrayBuffer();
  };
  return instances(opened.resource, await openStream(index, commitment, fetchChunk, progress));
}

// -- plain-language description (as healthnft.services.describe) ---------------------

const KIND_WORDS = { laboratory: "Blood test", "vital-signs": "Vital sign",
  immunization: "Vaccination", condition: "Condition", procedure: "Procedure",
  encounter: "Visit", claim: "Insurance claim", "diagnostic-report": "Report",
  "care-plan": "Care plan", "care-team": "Care team", medication: "Medication",
  allergy: "Allergy", imaging: "Imaging", note: "Clinical note", demographics: "Your details",
  survey: "Questionnaire", "social-history": "Social history", exam: "Examination",
  observation: "Observation" };
const TITLES = { laboratory: "Laboratory results", "vital-signs": "Vital signs",
  immunization: "Vaccinations", condition: "Conditions", procedure: "Procedures",
  encounter: "Visits", claim: "Claims and billing", "diagnostic-report": "Reports",
  medication: "Medications", imaging: "Imaging", note: "Clinical notes",
  demographics: "Personal details" };
const UNITS = { Cel: "°C", "[degF]": "°F", "kg/m2": "kg/m²", "mm[Hg]": "mmHg", "{score}": "",
  "[lb_av]": "lb", "[in_i]": "in", "10*3/uL": "×10³/µL", "10*6/uL": "×10⁶/µL" };
const cap = (s) => s.charAt(0).toUpperCase() + s.slice(1);

export function kindWord(category) {
  return KIND_WORDS[category] || cap(String(category || "record").replace(/-/g, " "));
}
export function categoryTitle(category) {
  return TITLES[category] || cap(String(category || "other").replace(/-/g, " "));
}

function concept(v) {
  if (!v || typeof v !== "object") return "";
  if (typeof v.text === "string" && v.text.trim()) return v.text.trim();
  for (const c of v.coding || []) if (c && typeof c.display === "string") return c.display.trim();
  return "";
}
function quantity(q) {
  if (!q || typeof q !== "object" || q.value === undefined || q.value === null) return "";
  let unit = q.unit || q.code || "";
  unit = unit in UNITS ? UNITS[unit] : unit;
  return `${q.value} ${unit}`.trim();
}
function value(o) {
  if ("valueQuantity" in o) return quantity(o.valueQuantity);
  if ("valueCodeableConcept" in o) return concept(o.valueCodeableConcept);
  for (const k of ["valueString", "valueBoolean", "valueInteger", "valueDateTime"]) {
    if (k in o) return String(o[k]);
  }
  return "";
}
function range(o) {
  for (const r of o.referenceRange || []) {
    if (!r || typeof r !== "object") continue;
    const low = quantity(r.low); const high = quantity(r.high);
    if (low && high) return `${low} – ${high}`;
    if (low) return `≥ ${low}`;
    if (high) return `≤ ${high}`;
    if (typeof r.text === "string") return r.text;
  }
  return "";
}
const interpretation = (o) => (o.interpretation || []).map(concept).filter(Boolean).join(", ");

export function recordDate(r) {
  for (const k of ["effectiveDateTime", "occurrenceDateTime", "issued", "recordedDate",
    "onsetDateTime", "performedDateTime", "authoredOn", "created", "date", "birthDate"]) {
    if (typeof r[k] === "string") return r[k];
  }
  for (const k of ["effectivePeriod", "performedPeriod", "period", "billablePeriod"]) {
    if (r[k] && typeof r[k].start === "string") return r[k].start;
  }
  return null;
}

function what(r) {
  const t = r.resourceType;
  if (t === "Observation") {
    const name = concept(r.code);
    const comps = (r.component || []).filter((c) => c && typeof c === "object");
    if (comps.length && comps.every((c) => value(c))) {
      const values = comps.map(value);
      const units = new Set(values.filter((v) => v.includes(" ")).map((v) => v.split(" ").slice(1).join(" ")));
      if (units.size === 1) return `${name} ${values.map((v) => v.split(" ")[0]).join("/")} ${[...units][0]}`;
      return `${name}: ${values.join(", ")}`;
    }
    return `${name} ${value(r)}`.trim();
  }
  if (t === "Immunization") return concept(r.vaccineCode);
  if (["MedicationRequest", "MedicationStatement", "MedicationAdministration"].includes(t)) {
    return concept(r.medicationCodeableConcept) || "prescription";
  }
  if (t === "Encounter") return (r.type || []).length ? concept(r.type[0]) : concept(r.class);
  if (t === "Patient") return "name, birth date and contact details";
  if (t === "DocumentReference") return concept(r.type) || r.description || "";
  for (const k of ["code", "type", "category"]) {
    const v = Array.isArray(r[k]) ? r[k][0] : r[k];
    const text = concept(v);
    if (text) return text;
  }
  return "";
}

/** One line: kind — what — when (the date is formatted by the caller's ``when``). */
export function summary(r, category, when) {
  return [kindWord(category), what(r), when(recordDate(r))].filter(Boolean).join(" — ");
}

export function measurements(r) {
  if (r.resourceType !== "Observation") return [];
  const comps = (r.component || []).filter((c) => c && typeof c === "object");
  const rows = comps.map((c) => ({ test: concept(c.code), value: value(c), range: range(c),
    interpretation: interpretation(c) }));
  if (value(r) || !rows.length) {
    rows.unshift({ test: concept(r.code), value: value(r), range: range(r),
      interpretation: interpretation(r) });
  }
  return rows.filter((x) => x.test || x.value);
}

const IMAGES = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);

export function attachments(r) {
  let found = [];
  if (r.resourceType === "DocumentReference" && Array.isArray(r.content)) {
    found = r.content.map((c) => c && c.attachment);
  } else if (r.resourceType === "Media" && r.content && typeof r.content === "object") {
    found = [r.content];
  } else if (r.resourceType === "DiagnosticReport" && Array.isArray(r.presentedForm)) {
    found = r.presentedForm;
  }
  const out = [];
  for (const a of found.filter((x) => x && typeof x === "object")) {
    const ctype = String(a.contentType || "").split(";")[0].trim().toLowerCase();
    const title = String(a.title || "");
    if (typeof a.data !== "string") {
      if (ctype || title) out.push({ kind: "file", content_type: ctype, title });
      continue;
    }
    let raw;
    try { raw = b64(a.data); } catch {
      out.push({ kind: "file", content_type: ctype, title });
      continue;
    }
    if (ctype.startsWith("text/")) out.push({ kind: "text", title, text: new TextDecoder().decode(raw) });
    else if (IMAGES.has(ctype)) out.push({ kind: "image", title, src: `data:${ctype};base64,${a.data}` });
    else out.push({ kind: "file", content_type: ctype, title });
  }
  return out;
}
