/* One help request as a card, coloured by urgency — shown by both help panels (help.js for
 * students, inbox.js for mentors). */

import { el } from "./dom.js";

/** `extra`: {testid, dataset?, who, detail?, actions?} */
export function helpCard(req, status, extra) {
  return el(
    "li",
    { class: "help-card", testid: extra.testid, dataset: { urgency: req.urgency, requestId: req.request_id, status, ...(extra.dataset || {}) } },
    el(
      "div",
      { class: "top" },
      el("span", { class: "u-pill", dataset: { urgency: req.urgency }, text: req.urgency }),
      el("span", { class: "subject", text: req.subject }),
      el("span", { class: "s-pill", testid: "help-status", dataset: { status }, text: status }),
      el("span", { class: "who", text: extra.who }),
    ),
    el("div", { class: "text", text: req.message }),
    extra.detail ? el("div", { class: "state", testid: "help-detail", text: extra.detail }) : null,
    extra.actions && extra.actions.length ? el("div", { class: "actions" }, ...extra.actions) : null,
  );
}
