// Privacy (scope privacy:write): file an erase or export request for the person on screen and
// follow its receipts (POST /v1/privacy/requests, GET /v1/privacy/requests/{id}) until the
// pipeline has completed it. Receipts hold counts, never values.
"use strict";

const FINAL_RECEIPTS = ["completed", "failed"];

function receiptsList(status) {
  return el("ul", { id: "receipts" }, status.receipts.map((receipt) => {
    const counts = Object.entries(receipt.counts || {}).sort()
      .map(([name, count]) => `${name.replaceAll("_", " ")} ${count}`).join(", ");
    return el("li", { "data-status": receipt.status },
      el("strong", {}, receipt.status), ` · ${receipt.kind} by ${receipt.requested_by}`,
      counts ? ` · ${counts}` : "", receipt.reason ? ` · ${receipt.reason}` : "");
  }));
}

async function fileRequest(profile, kind, reason, outcome) {
  fill(outcome, el("p", { className: "hint" }, `Filing the ${kind} request...`));
  const body = { kind, profile_id: profile.profile_id };
  if (reason) body.reason = reason;
  const sent = await api("/v1/privacy/requests", { method: "POST", body: JSON.stringify(body) });
  if (sent.status !== 202) return fill(outcome, el("p", { className: "error" }, describeError(sent)));
  const requestId = sent.body.request_id;
  const header = el("p", {}, `Request `, el("code", { id: "request-id" }, requestId), ` (${kind})`);
  fill(outcome, header, el("p", { className: "hint", id: "receipt-status" }, "Filed; waiting for its receipt..."));
  const status = await waitForOutcome(async () => {
    const answer = await api(`/v1/privacy/requests/${enc(requestId)}`);
    if (answer.status !== 200) return null;
    fill(outcome, header, el("p", { id: "receipt-status" }, `Status: ${answer.body.status}`), receiptsList(answer.body));
    return FINAL_RECEIPTS.includes(answer.body.status) ? answer.body : null;
  });
  if (!status) {
    outcome.append(el("p", { className: "error" }, "No final receipt yet; the request stays filed, look again later."));
    return;
  }
  if (kind === "erase" && status.status === "completed") {
    // What was on screen is gone from omnid now: show only the receipts.
    fill(document.getElementById("profile-screen"),
      el("p", { id: "erased-notice", className: "notice" }, `Profile ${profile.profile_id} was erased: nothing about this person is `
        + "held any more, and their identifiers are suppressed, so new events do not bring them back."),
      section("Privacy", outcome));
  }
  if (kind === "export" && status.status === "completed") {
    const exported = await api(`/v1/profiles/${enc(profile.profile_id)}/export`);
    outcome.append(exported.status === 200
      ? el("details", { id: "export-document", open: true }, el("summary", {}, "Everything held about this person"),
        el("pre", {}, JSON.stringify(exported.body, null, 2)))
      : el("p", { className: "error" }, describeError(exported)));
  }
}

function privacyCard(profile) {
  const outcome = el("div", { className: "outcome", id: "privacy-outcome" });
  const reason = el("input", { id: "privacy-reason", placeholder: "reason or ticket (optional)", maxlength: 200 });
  const confirm = el("button", { id: "erase-confirm", className: "danger", type: "button", hidden: true,
    onclick: () => { confirm.hidden = true; fileRequest(profile, "erase", reason.value.trim(), outcome); } },
  "Yes, erase everything about this person");
  return el("section", { className: "card", id: "privacy" },
    el("h3", {}, "Privacy"),
    el("div", { className: "actions" }, reason,
      el("button", { id: "export", className: "secondary", type: "button",
        onclick: () => fileRequest(profile, "export", reason.value.trim(), outcome) }, "Export their data"),
      el("button", { id: "erase", className: "danger", type: "button", onclick: () => { confirm.hidden = false; } },
        "Erase this person..."),
      confirm),
    outcome);
}
