"use strict";
/* The Encrypt command and the on-send check (src/commands.js) against a mocked Outlook item
   (office-addin-mock) and a stubbed fetch: what they ask the server, what they do to the
   draft, and how each event is completed. */
const test = require("node:test");
const assert = require("node:assert/strict");
const { BASE, TOKEN, outlook, signIn, serve, unreachable, json, settle, reset } =
  require("./helpers");

// Registered at load: Outlook calls the handlers by the names the manifest gives.
const loading = outlook();
const commands = require("../src/commands.js");

const TAG = "t4g-Va1ue_from-the-server";
const SSN = { label: "US Social Security number", count: 2 };
const CARD = { label: "credit card number", count: 1 };

function event() {
  const completions = [];
  let resolve;
  const completed = new Promise((r) => { resolve = r; });
  return {
    completions,
    completed,
    completedWith: (options) => { completions.push(options); resolve(options); },
    get handle() {
      return { completed: (options) => this.completedWith(options) };
    },
  };
}

async function run(handler) {
  const e = event();
  await handler(e.handle);
  const options = await e.completed;
  await settle();
  assert.equal(e.completions.length, 1, "the event is completed exactly once");
  return options;
}

function tagServer() {
  return serve((seen) => {
    if (seen.method === "POST" && seen.path === "/api/v1/tags") {
      return json(201, { header: "X-Sealgate-Encrypt", value: TAG });
    }
    return json(404, { error: "not_found" });
  });
}

function scanServer(result, status = 200) {
  return serve((seen) => {
    if (seen.method === "POST" && seen.path === "/api/v1/scan") return json(status, result);
    return json(404, { error: "not_found" });
  });
}

test.afterEach(reset);

test("both handlers the manifest names are registered with Office.actions.associate", () => {
  assert.deepEqual(Object.keys(loading.associated).sort(),
                   ["onMessageSendHandler", "toggleEncrypt", "togglePortal"]);
  assert.equal(loading.associated.toggleEncrypt, commands.toggleEncrypt);
  assert.equal(loading.associated.togglePortal, commands.togglePortal);
  assert.equal(loading.associated.onMessageSendHandler, commands.onMessageSendHandler);
});

// -- Encrypt --------------------------------------------------------------------------------------

test("Encrypt on: a tag from the server goes on the draft as its header, and the bar says so",
     async () => {
  const draft = outlook();
  const tokens = signIn();
  const requests = tagServer();
  const completed = await run(commands.toggleEncrypt);
  assert.equal(completed, undefined);
  assert.deepEqual(tokens, [{ allowSignInPrompt: true, allowConsentPrompt: true }]);
  assert.equal(requests.length, 1);
  assert.equal(requests[0].url, `${BASE}/api/v1/tags`);
  assert.equal(requests[0].method, "POST");
  assert.equal(requests[0].headers.Authorization, `Bearer ${TOKEN}`);
  assert.equal(requests[0].init.credentials, "omit");
  assert.deepEqual(draft.headers, { "X-Sealgate-Encrypt": TAG });
  assert.equal(draft.subject, "Quarterly figures");
  const notice = draft.notices[commands.ENCRYPT_NOTICE];
  assert.equal(notice.message, "This message will be sent securely.");
  assert.equal(notice.type, "informationalMessage");
  assert.equal(notice.persistent, true);
});

test("Secure portal puts the portal keyword in the subject, and again takes it out",
     async () => {
  const draft = outlook();
  const tokens = signIn();
  const requests = tagServer();
  await run(commands.togglePortal);
  assert.equal(draft.subject, "secure/ Quarterly figures");
  assert.match(draft.notices[commands.PORTAL_NOTICE].message, /through the secure portal/);
  await run(commands.togglePortal);
  assert.equal(draft.subject, "Quarterly figures");
  assert.deepEqual(draft.notices, {});
  assert.deepEqual(requests, []);  // a keyword: no server, no sign-in
  assert.deepEqual(tokens, []);
});

test("Encrypt again: the header and the bar go, without asking the server", async () => {
  const draft = outlook({ headers: { "X-Sealgate-Encrypt": TAG } });
  draft.notices[commands.ENCRYPT_NOTICE] = { message: "This message will be sent securely." };
  const tokens = signIn();
  const requests = tagServer();
  await run(commands.toggleEncrypt);
  assert.deepEqual(draft.headers, {});
  assert.deepEqual(draft.notices, {});
  assert.deepEqual(requests, []);
  assert.deepEqual(tokens, []);
  assert.ok(draft.calls.includes("internetHeaders.removeAsync"));
});

test("the state lives in the draft: two clicks in fresh runtimes turn it on, then off",
     async () => {
  const draft = outlook();
  signIn();
  tagServer();
  await run(commands.toggleEncrypt);
  assert.equal(draft.headers["X-Sealgate-Encrypt"], TAG);
  // A new runtime sees the same item (the mock keeps the item, nothing else carries over).
  delete require.cache[require.resolve("../src/commands.js")];
  const fresh = require("../src/commands.js");
  await run(fresh.toggleEncrypt);
  assert.deepEqual(draft.headers, {});
});

test("without the header API (below Mailbox 1.8) Encrypt puts the keyword in the subject",
     async () => {
  const draft = outlook({ headerApi: false });
  signIn();
  const requests = tagServer();
  await run(commands.toggleEncrypt);
  assert.equal(draft.subject, "encrypt/ Quarterly figures");
  assert.deepEqual(requests, []);
  assert.match(draft.notices[commands.ENCRYPT_NOTICE].message,
               /^This message will be sent securely: encrypt\/ was added to the subject \(this Outlook cannot tag messages\)\.$/);
});

test("when sign-in fails Encrypt falls back to the keyword and says why", async () => {
  const draft = outlook();
  signIn(null, { code: 13001, message: "The user is not signed in." });
  const requests = tagServer();
  await run(commands.toggleEncrypt);
  assert.deepEqual(requests, []);
  assert.deepEqual(draft.headers, {});
  assert.equal(draft.subject, "encrypt/ Quarterly figures");
  assert.match(draft.notices[commands.ENCRYPT_NOTICE].message,
               /not signed in to Sealgate/);
  assert.ok(draft.notices[commands.ENCRYPT_NOTICE].message.length <= 150);
});

test("when the server cannot be reached Encrypt falls back to the keyword", async () => {
  const draft = outlook({ subject: "" });
  signIn();
  unreachable();
  await run(commands.toggleEncrypt);
  assert.deepEqual(draft.headers, {});
  assert.equal(draft.subject, "encrypt/");
  assert.match(draft.notices[commands.ENCRYPT_NOTICE].message, /could not be reached/);
});

test("an answer that is not a tag is not put on the draft", async () => {
  const draft = outlook();
  signIn();
  serve(() => json(201, { header: "Bcc", value: "everyone@example.net" }));
  await run(commands.toggleEncrypt);
  assert.deepEqual(draft.headers, {});
  assert.equal(draft.subject, "encrypt/ Quarterly figures");
});

test("Encrypt off also takes the keyword out of the subject", async () => {
  const draft = outlook({ subject: "Encrypt/ Quarterly  figures encrypt/" });
  draft.notices[commands.ENCRYPT_NOTICE] = { message: "sent securely" };
  signIn();
  const requests = tagServer();
  await run(commands.toggleEncrypt);
  assert.equal(draft.subject, "Quarterly figures");
  assert.deepEqual(draft.notices, {});
  assert.deepEqual(requests, []);
});

test("when nothing works Encrypt says so with an error bar, and still completes", async () => {
  const draft = outlook({ headerApi: false, fail: { "subject.setAsync": "read-only" } });
  signIn();
  await run(commands.toggleEncrypt);
  const notice = draft.notices[commands.ENCRYPT_NOTICE];
  assert.equal(notice.type, "errorMessage");
  assert.match(notice.message, /could not mark this message.*type encrypt\/ in the subject/);
});

// -- on send --------------------------------------------------------------------------------------

test("a sensitive untagged draft is stopped, naming what was found, with Encrypt and send",
     async () => {
  const draft = outlook({ body: "SSN 078-05-1120" });
  signIn();
  const requests = scanServer({ findings: [SSN, CARD, { label: "US Social Security number" }],
                                sensitive: true, engine: "sealgate-dlp" });
  const options = await run(commands.onMessageSendHandler);
  assert.deepEqual(options, {
    allowEvent: false,
    errorMessage: "This message contains US Social Security number (3), credit card number. " +
                  "Select Encrypt and send to send it securely.",
    cancelLabel: "Encrypt and send",
    commandId: "SealgateEncryptButton",
    sendModeOverride: "promptUser",
  });
  assert.equal(requests.length, 1);
  assert.equal(requests[0].headers.Authorization, `Bearer ${TOKEN}`);
  assert.deepEqual(requests[0].body, { subject: "Quarterly figures", body: "SSN 078-05-1120",
                                       body_type: "text", attachments: [] });
  assert.ok(options.cancelLabel.length <= 20);
});

test("the scan is told every recipient, once, so mail that stays inside is judged as such",
     async () => {
  outlook({ body: "card 4111 1111 1111 1111", to: ["nurse@example.org", "Pat@Gmail.test"],
            cc: ["nurse@example.org"], bcc: ["audit@example.org"] });
  signIn();
  const requests = scanServer({ findings: [], sensitive: false });
  const options = await run(commands.onMessageSendHandler);
  assert.deepEqual(options, { allowEvent: true });
  assert.deepEqual(requests[0].body.recipients,
                   ["nurse@example.org", "Pat@Gmail.test", "audit@example.org"]);
});

test("content a policy blocks is stopped without offering Encrypt, which would not help",
     async () => {
  outlook({ body: "passport C03005988" });
  signIn();
  scanServer({ findings: [{ type: "US_PASSPORT", label: "US passport number" }],
               sensitive: true, action: "block" });
  const options = await run(commands.onMessageSendHandler);
  assert.deepEqual(options, {
    allowEvent: false,
    errorMessage: "This message contains US passport number, which your organisation does " +
                  "not allow to be sent outside it, even securely. Remove it, or ask your " +
                  "administrator.",
  });
});

test("on a client before Mailbox 1.14 the stop carries no options that client lacks",
     async () => {
  outlook({ mailbox: "1.12" });
  signIn();
  scanServer({ findings: [SSN], sensitive: true, engine: "sealgate-dlp" });
  const options = await run(commands.onMessageSendHandler);
  assert.deepEqual(options, {
    allowEvent: false,
    errorMessage: "This message contains US Social Security number (2). Choose Don't Send, " +
                  "then select Encrypt in the Sealgate group to send it securely.",
  });
});

test("on Mailbox 1.14 the dialog keeps Send Anyway but offers no button it cannot run",
     async () => {
  outlook({ mailbox: "1.14" });
  signIn();
  scanServer({ findings: [], sensitive: true, engine: "sealgate-dlp" });
  const options = await run(commands.onMessageSendHandler);
  assert.equal(options.allowEvent, false);
  assert.equal(options.sendModeOverride, "promptUser");
  assert.equal(options.commandId, undefined);
  assert.equal(options.cancelLabel, undefined);
  assert.match(options.errorMessage, /^This message contains sensitive information\./);
});

test("a tagged draft goes without a scan", async () => {
  outlook({ headers: { "x-sealgate-encrypt": TAG } });
  const tokens = signIn();
  const requests = scanServer({ findings: [SSN], sensitive: true });
  assert.deepEqual(await run(commands.onMessageSendHandler), { allowEvent: true });
  assert.deepEqual(requests, []);
  assert.deepEqual(tokens, []);
});

test("a draft with the subject keyword goes without a scan", async () => {
  outlook({ subject: "ENCRYPT/ payroll" });
  signIn();
  const requests = scanServer({ findings: [SSN], sensitive: true });
  assert.deepEqual(await run(commands.onMessageSendHandler), { allowEvent: true });
  assert.deepEqual(requests, []);
});

test("a clean draft goes; the scan gets the attachments' names and, within bounds, content",
     async () => {
  const big = commands.MAX_ATTACHMENT_BYTES + 1;
  const draft = outlook({
    attachments: [
      { id: "a1", name: "figures.csv", size: 12, contentType: "text/csv",
        content: Buffer.from("ssn,078-05-1120").toString("base64") },
      { id: "a2", name: "scan.pdf", size: big, contentType: "application/pdf", content: "AAAA" },
      { id: "a3", name: "plan.docx", size: 10, attachmentType: "cloud", content: "AAAA" },
      { id: "a4", name: "link", size: 10, format: "url", content: "https://x.test/a" },
    ],
  });
  signIn();
  const requests = scanServer({ findings: [], sensitive: false, engine: "sealgate-dlp" });
  assert.deepEqual(await run(commands.onMessageSendHandler), { allowEvent: true });
  assert.deepEqual(requests[0].body.attachments, [
    { name: "figures.csv", content_type: "text/csv",
      content_base64: Buffer.from("ssn,078-05-1120").toString("base64") },
    { name: "scan.pdf", content_type: "application/pdf" },
    { name: "plan.docx" },
    { name: "link" },
  ]);
  // Neither the oversized file nor the cloud attachment was read.
  assert.deepEqual(draft.calls.filter((c) => c.startsWith("getAttachmentContentAsync")),
                   ["getAttachmentContentAsync(a1)", "getAttachmentContentAsync(a4)"]);
});

test("a draft too large for the server is scanned again without attachment content",
     async () => {
  outlook({ attachments: [{ id: "a1", name: "a.txt", size: 3, content: "YWJj" }] });
  signIn();
  const bodies = [];
  serve((seen) => {
    bodies.push(seen.body);
    return bodies.length === 1 ? json(413, { error: "too_large" }) :
      json(200, { findings: [SSN], sensitive: true, engine: "sealgate-dlp" });
  });
  const options = await run(commands.onMessageSendHandler);
  assert.equal(options.allowEvent, false);
  assert.deepEqual(bodies.map((b) => b.attachments), [
    [{ name: "a.txt", content_base64: "YWJj" }], [{ name: "a.txt" }]]);
});

test("when the server is down the message goes, and the sender is told the check did not run",
     async () => {
  const draft = outlook();
  signIn();
  unreachable();
  assert.deepEqual(await run(commands.onMessageSendHandler), { allowEvent: true });
  const notice = draft.notices[commands.SEND_NOTICE];
  assert.equal(notice.type, "informationalMessage");
  assert.equal(notice.message, "Sealgate could not check this message before it was sent " +
                               "(Sealgate could not be reached). The mail gateway still checks it.");
  assert.ok(notice.message.length <= 150);
});

test("when the server answers with an error the message goes, with the notice", async () => {
  const draft = outlook();
  signIn();
  scanServer({ error: "key_set_unavailable", message: "try later" }, 503);
  assert.deepEqual(await run(commands.onMessageSendHandler), { allowEvent: true });
  assert.match(draft.notices[commands.SEND_NOTICE].message, /answered with an error/);
});

test("when sign-in fails the message goes, with the notice", async () => {
  const draft = outlook();
  signIn(null, { code: 13001, message: "not signed in" });
  const requests = scanServer({ findings: [SSN], sensitive: true });
  assert.deepEqual(await run(commands.onMessageSendHandler), { allowEvent: true });
  assert.deepEqual(requests, []);
  assert.match(draft.notices[commands.SEND_NOTICE].message, /not signed in to Sealgate/);
});

test("a scan that takes longer than 5 seconds is abandoned: the message goes, with the notice",
     async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const draft = outlook();
  signIn();
  let signal;
  global.fetch = (url, init) => {
    signal = init.signal;
    return new Promise(() => {});  // never answers
  };
  const e = event();
  commands.onMessageSendHandler(e.handle);
  for (let i = 0; i < 20 && !signal; i++) await settle();
  assert.ok(signal, "the scan was sent");
  t.mock.timers.tick(4999);
  await settle();
  assert.equal(e.completions.length, 0);
  t.mock.timers.tick(1);
  assert.deepEqual(await e.completed, { allowEvent: true });
  assert.equal(signal.aborted, true);
  assert.match(draft.notices[commands.SEND_NOTICE].message, /did not answer in time/);
});

test("a stale 'could not check' notice is cleared when a later check passes", async () => {
  const draft = outlook();
  draft.notices[commands.SEND_NOTICE] = { message: "could not check" };
  signIn();
  scanServer({ findings: [], sensitive: false });
  assert.deepEqual(await run(commands.onMessageSendHandler), { allowEvent: true });
  assert.deepEqual(draft.notices, {});
});

// -- pieces -----------------------------------------------------------------------------------------

test("findings are named by label, merged and counted, never by what matched", () => {
  assert.deepEqual(commands.describeFindings([
    { label: "IBAN", count: 1, match: "DE89 3704 0044 0532 0130 00" },
    { detector: "iban" },
    { name: "Health record\nnumber" },
    "passport number",
    { count: 3 },
    null,
  ]), ["IBAN (2)", "Health record number", "passport number"]);
  assert.deepEqual(commands.describeFindings(undefined), []);
});

test("the keyword comes out of the subject as the milter takes it out", () => {
  assert.equal(commands.withoutKeyword("encrypt/ Lab results"), "Lab results");
  assert.equal(commands.withoutKeyword("Lab ENCRYPT/ results"), "Lab results");
  assert.equal(commands.withoutKeyword("encrypt/"), "");
});

test("classic Outlook (no page) finds the server from the script's own address", () => {
  outlook();
  delete global.location;
  global.Office.context.urls = { javascriptRuntimeUrl: "https://gate.example.org/mail/addin/commands.js" };
  assert.equal(commands.apiBase(), "https://gate.example.org/mail");
  delete global.Office.context.urls;
  assert.throws(() => commands.apiBase(), /address of the Sealgate server is unknown/);
});
