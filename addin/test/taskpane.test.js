"use strict";
/* The read-mode task pane (src/taskpane.js): recognising a Sealgate notification, fetching the
   secure message with the user's token, drawing it (in a stand-in document), the plain-language
   errors, downloads and the sender's Retract. */
const test = require("node:test");
const assert = require("node:assert/strict");
const { BASE, TOKEN, MESSAGE_ID, outlook, signIn, serve, json, settle, reset, FakeDocument } =
  require("./helpers");

const pane = require("../src/taskpane.js");

const PART_ID = "7d0f5a52-3b1e-4c55-8a0e-abcdefabcdef";
const INLINE_ID = "1e2d3c4b-5a69-4788-9a0b-0c1d2e3f4a5b";
const PNG = Buffer.from("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==", "base64");
const NOTIFICATION_HEADERS = [
  "Received: from gate.example.org by mx.example.org; Mon, 1 Jan 2024 10:00:00 +0000",
  "Subject: Lab results",
  `X-Sealgate-Message-Id:\r\n ${MESSAGE_ID.toUpperCase()}`,
  "Content-Type: multipart/alternative; boundary=x",
].join("\r\n");

function document(extra = {}) {
  return Object.assign({
    id: MESSAGE_ID, subject: "Lab results", sender: "doctor@example.org",
    sender_name: "Dr Who", created_at: "2024-01-01T10:00:00+00:00", state: "active",
    html: `<p>Your results are <b>normal</b>.</p><img src="http://127.0.0.1:8025/api/v1/messages/${MESSAGE_ID}/parts/${INLINE_ID}">`,
    text: "Your results are normal.",
    attachments: [{ id: PART_ID, filename: "report.pdf", content_type: "application/pdf",
                    size: 2048, url: `http://elsewhere.test/api/v1/messages/${MESSAGE_ID}/parts/${PART_ID}` }],
  }, extra);
}

function messageServer(answers = {}) {
  return serve((seen) => {
    const key = `${seen.method} ${seen.path}`;
    if (key in answers) return answers[key](seen);
    if (key === `GET /api/v1/messages/${MESSAGE_ID}`) return json(200, document());
    if (key === `GET /api/v1/messages/${MESSAGE_ID}/parts/${INLINE_ID}`) {
      return new Response(PNG, { status: 200, headers: { "Content-Type": "image/png" } });
    }
    if (key === `GET /api/v1/messages/${MESSAGE_ID}/parts/${PART_ID}`) {
      return new Response("%PDF-1.7", { status: 200, headers: { "Content-Type": "application/pdf" } });
    }
    return json(404, { error: "not_found", message: "There is no message for you at this address." });
  });
}

function notification(read = {}) {
  return outlook({ read: Object.assign({ allHeaders: NOTIFICATION_HEADERS }, read) });
}

test.afterEach(reset);

// -- recognising a notification --------------------------------------------------------------------

test("the id comes from the X-Sealgate-Message-Id header, folded or not, any case", () => {
  assert.equal(pane.headerMessageId(NOTIFICATION_HEADERS), MESSAGE_ID);
  assert.equal(pane.headerMessageId(`x-sealgate-message-id: <${MESSAGE_ID}>\n`), MESSAGE_ID);
  assert.equal(pane.headerMessageId("X-Sealgate-Message-Id: not-a-uuid"), null);
  assert.equal(pane.headerMessageId(`X-Other: ${MESSAGE_ID}`), null);
  assert.equal(pane.headerMessageId(`Subject: X-Sealgate-Message-Id: ${MESSAGE_ID}`), null);
  assert.equal(pane.headerMessageId(undefined), null);
});

test("or from the secure-message link in the body", () => {
  assert.equal(pane.bodyMessageId(`<a href="https://gate.example.org/m/${MESSAGE_ID}">Read</a>`),
               MESSAGE_ID);
  assert.equal(pane.bodyMessageId(`https://gate.example.org/m/${MESSAGE_ID}x`), MESSAGE_ID);
  assert.equal(pane.bodyMessageId(`https://gate.example.org/m/${MESSAGE_ID}-1`), null);
  assert.equal(pane.bodyMessageId("https://gate.example.org/t/abc"), null);
});

test("the header is read first; without the header API, the body's link is used", async () => {
  const withHeaders = notification({ htmlBody: "no link here" });
  assert.equal(await pane.findMessageId(global.Office.context.mailbox.item), MESSAGE_ID);
  assert.deepEqual(withHeaders.calls, ["getAllInternetHeadersAsync"]);
  const withoutHeaders = notification({
    noHeaderApi: true, htmlBody: "<p>no link in the HTML</p>",
    textBody: `Read it here:\nhttps://gate.example.org/m/${MESSAGE_ID}\n` });
  assert.equal(await pane.findMessageId(global.Office.context.mailbox.item), MESSAGE_ID);
  assert.deepEqual(withoutHeaders.calls, ["body.getAsync(html)", "body.getAsync(text)"]);
});

test("a message that is not a notification is said to be so, without any sign-in", async () => {
  notification({ allHeaders: "Subject: hello\r\n", htmlBody: "<p>hi</p>" });
  const tokens = signIn();
  const requests = messageServer();
  const model = await pane.loadMessage(global.Office.context.mailbox.item);
  assert.deepEqual(model, { kind: "info", text: pane.TEXT.notSealgate });
  assert.deepEqual(tokens, []);
  assert.deepEqual(requests, []);
});

// -- fetching the message ----------------------------------------------------------------------------

test("the message is fetched with the user's token; inline images become data: URLs",
     async () => {
  notification();
  const tokens = signIn();
  const requests = messageServer();
  const model = await pane.loadMessage(global.Office.context.mailbox.item);
  assert.equal(model.kind, "message");
  assert.equal(model.id, MESSAGE_ID);
  assert.equal(tokens.length, 1);
  assert.deepEqual(requests.map((r) => `${r.method} ${r.url}`), [
    `GET ${BASE}/api/v1/messages/${MESSAGE_ID}`,
    `GET ${BASE}/api/v1/messages/${MESSAGE_ID}/parts/${INLINE_ID}`,
  ]);
  for (const seen of requests) assert.equal(seen.headers.Authorization, `Bearer ${TOKEN}`);
  assert.equal(model.bodyHtml, "<p>Your results are <b>normal</b>.</p>" +
               `<img src="data:image/png;base64,${PNG.toString("base64")}">`);
});

test("an inline part that is not an image, or belongs to another message, is dropped",
     async () => {
  const other = "99999999-9999-4999-8999-999999999999";
  serve((seen) => new Response("<script>x</script>", {
    status: 200, headers: { "Content-Type": "text/html" } }));
  const html = `<img src="/api/v1/messages/${MESSAGE_ID}/parts/${INLINE_ID}">` +
               `<img src="/api/v1/messages/${other}/parts/${INLINE_ID}">`;
  outlook({ read: {} });
  assert.equal(await pane.inlineImages(html, MESSAGE_ID, TOKEN),
               '<img src=""><img src="">');
});

const ERRORS = [
  ["not yours (404)", 404, { error: "not_found" }, pane.TEXT.notYours],
  ["withdrawn (410)", 410, { error: "retracted", state: "retracted" }, pane.TEXT.retracted],
  ["expired (410)", 410, { error: "expired", state: "expired" }, pane.TEXT.expired],
  ["a refused token (401)", 401, { error: "expired" }, pane.TEXT.refused],
  ["a missing scope (403)", 403, { error: "missing_scope" }, pane.TEXT.refused],
  ["the server's keys unavailable (503)", 503, { error: "key_set_unavailable" },
   pane.TEXT.unavailable],
  ["anything else", 500, null, "Sealgate could not show this message (error 500)."],
];
for (const [what, status, body, text] of ERRORS) {
  test(`the pane explains ${what} in plain words`, async () => {
    notification();
    signIn();
    messageServer({ [`GET /api/v1/messages/${MESSAGE_ID}`]: () => json(status, body) });
    const model = await pane.loadMessage(global.Office.context.mailbox.item);
    assert.deepEqual(model, { kind: "error", text });
  });
}

test("a message with a question sends the reader to the portal", async () => {
  notification();
  signIn();
  messageServer({ [`GET /api/v1/messages/${MESSAGE_ID}`]: () => json(403, {
    error: "question_required",
    message: "The sender set a question for this message: open it in the secure portal.",
    portal_url: `https://gate.example.org/m/${MESSAGE_ID}` }) });
  const model = await pane.loadMessage(global.Office.context.mailbox.item);
  assert.deepEqual(model, {
    kind: "error",
    text: "The sender set a question for this message: open it in the secure portal.",
    link: `https://gate.example.org/m/${MESSAGE_ID}` });
});

test("without a sign-in the pane asks for one", async () => {
  notification();
  signIn(null, { code: 13001, message: "not signed in" });
  const requests = messageServer();
  const model = await pane.loadMessage(global.Office.context.mailbox.item);
  assert.deepEqual(model, { kind: "error", text: `${pane.TEXT.signIn} (Office error 13001)` });
  assert.deepEqual(requests, []);
});

test("when the server cannot be reached the pane says so", async () => {
  notification();
  signIn();
  serve(() => { throw new TypeError("fetch failed"); });
  const model = await pane.loadMessage(global.Office.context.mailbox.item);
  assert.deepEqual(model, { kind: "error", text: pane.TEXT.unreachable });
});

test("on the sender's own sent copy the server is asked by the copy's Message-ID", async () => {
  notification({ allHeaders: "Subject: Lab results\r\n", htmlBody: "<p>the original</p>",
                 from: "Doctor@Example.org", me: "doctor@example.org",
                 internetMessageId: "<m1@example.org>" });
  signIn();
  const requests = messageServer({
    "GET /api/v1/messages?internet_message_id=%3Cm1%40example.org%3E":
      () => json(200, { messages: [{ id: MESSAGE_ID }] }) });
  const model = await pane.loadMessage(global.Office.context.mailbox.item);
  assert.equal(model.kind, "message");
  assert.equal(requests[1].path, `/api/v1/messages/${MESSAGE_ID}`);
});

test("a sent copy the server does not know is not a secure message", async () => {
  notification({ allHeaders: "", htmlBody: "", from: "me@example.org", me: "me@example.org",
                 internetMessageId: "<m2@example.org>" });
  signIn();
  messageServer();
  assert.deepEqual(await pane.loadMessage(global.Office.context.mailbox.item),
                   { kind: "info", text: pane.TEXT.notSealgate });
});

// -- drawing ---------------------------------------------------------------------------------------

async function shown(options = {}) {
  notification(options.read);
  signIn();
  const requests = messageServer(options.answers);
  const doc = new FakeDocument();
  const model = await pane.start(doc);
  return { doc, model, requests, view: doc.getElementById("content") };
}

test("the message is drawn: subject, sender, the body in a frame without scripts, attachments",
     async () => {
  const { view } = await shown();
  assert.equal(view.find((n) => n.tagName === "H2").textContent, "Lab results");
  assert.match(view.find((n) => n.getAttribute("class") === "meta").textContent,
               /^From Dr Who <doctor@example.org>, /);
  const frame = view.find((n) => n.tagName === "IFRAME");
  const sandbox = frame.getAttribute("sandbox");
  assert.ok(sandbox !== null);
  assert.ok(!/allow-scripts|allow-same-origin/.test(sandbox), sandbox);
  const srcdoc = frame.getAttribute("srcdoc");
  assert.match(srcdoc, /<body><p>Your results are <b>normal<\/b>\.<\/p><img src="data:image\/png;base64,/);
  assert.match(srcdoc, new RegExp(`<link rel="stylesheet" href="${BASE}/addin/message.css">`));
  const items = view.findAll((n) => n.tagName === "LI");
  assert.equal(items.length, 1);
  assert.match(items[0].textContent, /^report\.pdf2 KBDownload/);
  assert.equal(view.find((n) => n.tagName === "TABLE"), null, "no tracking for a recipient");
  assert.equal(view.button("Retract"), null);
});

test("Download fetches the part from this server with the token and saves it", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });  // the blob URL is revoked a minute later
  const saved = [];
  t.mock.method(URL, "createObjectURL", (blob) => { saved.push(blob); return "blob:sealgate/1"; });
  t.mock.method(URL, "revokeObjectURL", () => {});
  const { doc, view, requests } = await shown();
  view.button("Download").click();
  for (let i = 0; i < 10 && !saved.length; i++) await settle();
  const last = requests[requests.length - 1];
  // From the pane's own server, whatever address the JSON names.
  assert.equal(last.url, `${BASE}/api/v1/messages/${MESSAGE_ID}/parts/${PART_ID}`);
  assert.equal(last.headers.Authorization, `Bearer ${TOKEN}`);
  assert.equal(await saved[0].text(), "%PDF-1.7");
  const link = doc.clicked.find((n) => n.tagName === "A");
  assert.equal(link.getAttribute("download"), "report.pdf");
  assert.equal(link.getAttribute("href"), "blob:sealgate/1");
});

test("a download that fails says why next to the button", async () => {
  const { view } = await shown({ answers: {
    [`GET /api/v1/messages/${MESSAGE_ID}/parts/${PART_ID}`]: () => json(410, { state: "retracted" }) } });
  const button = view.button("Download");
  button.click();
  for (let i = 0; i < 10 && button.disabled !== false; i++) await settle();
  await settle();
  assert.match(view.find((n) => n.tagName === "LI").textContent, /withdrawn/);
  assert.equal(button.disabled, false);
});

const TRACKING = { recipients: [
  { address: "patient@gmail.test", method: "portal", first_opened_at: "2024-01-02T09:00:00+00:00",
    last_opened_at: "2024-01-02T09:00:00+00:00", downloads: 1 },
  { address: "carer@yahoo.test", method: "portal", first_opened_at: null,
    last_opened_at: null, downloads: 0 },
] };

test("the sender sees who opened it, and can retract it after confirming", async () => {
  let retracted = 0;
  const { view, requests } = await shown({ answers: {
    [`GET /api/v1/messages/${MESSAGE_ID}`]: () => json(200, document({ tracking: TRACKING })),
    [`POST /api/v1/messages/${MESSAGE_ID}/retract`]: () => {
      retracted += 1;
      return json(200, { id: MESSAGE_ID, state: "retracted" });
    } } });
  const rows = view.find((n) => n.tagName === "TBODY").childNodes;
  assert.equal(rows.length, 2);
  assert.equal(rows[0].childNodes[0].textContent, "patient@gmail.test");
  assert.notEqual(rows[0].childNodes[1].textContent, "Not yet");
  assert.equal(rows[0].childNodes[2].textContent, "1");
  assert.deepEqual(rows[1].childNodes.map((c) => c.textContent),
                   ["carer@yahoo.test", "Not yet", "0"]);
  view.button("Retract").click();
  assert.equal(retracted, 0, "one click only asks");
  assert.match(view.textContent, /Retract it\?/);
  view.button("Cancel").click();
  view.button("Retract").click();
  view.button("Retract message").click();
  for (let i = 0; i < 10 && !retracted; i++) await settle();
  await settle();
  assert.equal(retracted, 1);
  const post = requests.find((r) => r.method === "POST");
  assert.equal(post.headers.Authorization, `Bearer ${TOKEN}`);
  assert.match(view.textContent, /Retracted: recipients can no longer read this message\./);
  assert.equal(view.button("Retract"), null);
});

function withItemIds() {
  Office.context.mailbox.item.itemId = "AAMkAGI2EWS+id/==";
  Office.context.mailbox.convertToRestId = (id, version) => `rest:${version}:${id.replace(/[+/]/g, "-")}`;
  Office.MailboxEnums.RestVersion = { v2_0: "v2.0" };
}

test("a colleague can save it to their mailbox: the open item's ids go to the server",
     async () => {
  const posted = [];
  notification();
  withItemIds();
  signIn();
  const requests = messageServer({
    [`GET /api/v1/messages/${MESSAGE_ID}`]: () =>
      json(200, document({ mailbox: { available: true, auto: false } })),
    [`POST /api/v1/messages/${MESSAGE_ID}/mailbox`]: (seen) => {
      posted.push(seen.body);
      return json(200, { saved: true, item_id: "new", placeholder_removed: true });
    } });
  const doc = new FakeDocument();
  await pane.start(doc);
  const view = doc.getElementById("content");
  assert.deepEqual(posted, [], "nothing is saved before the button is pressed");
  view.button("Save to mailbox").click();
  for (let i = 0; i < 10 && !posted.length; i++) await settle();
  await settle();
  assert.equal(posted.length, 1);
  assert.deepEqual(posted[0], { item_id: "AAMkAGI2EWS+id/==",
                              rest_id: "rest:v2.0:AAMkAGI2EWS-id-==" });
  const post = requests.find((r) => r.method === "POST");
  assert.equal(post.headers.Authorization, `Bearer ${TOKEN}`);
  assert.match(view.textContent, /Saved: the full message is now in your mailbox\./);
  assert.equal(view.button("Save to mailbox"), null);
});

test("with auto-save the pane saves at once, and a refusal says why and can be retried",
     async () => {
  let calls = 0;
  notification();
  withItemIds();
  signIn();
  messageServer({
    [`GET /api/v1/messages/${MESSAGE_ID}`]: () =>
      json(200, document({ mailbox: { available: true, auto: true } })),
    [`POST /api/v1/messages/${MESSAGE_ID}/mailbox`]: () => {
      calls += 1;
      return json(429, { error: "mailbox_busy", retry_after: 5,
                         message: "Your mailbox is busy. Please try again in a moment." });
    } });
  const doc = new FakeDocument();
  await pane.start(doc);
  for (let i = 0; i < 10 && !calls; i++) await settle();
  await settle();
  const view = doc.getElementById("content");
  assert.equal(calls, 1);
  assert.match(view.textContent, /Your mailbox is busy/);
  assert.equal(view.button("Save to mailbox").disabled, false);
});

test("without the mailbox offer (a sender, an outside reader) there is no Save button",
     async () => {
  const { view } = await shown();
  assert.equal(view.button("Save to mailbox"), null);
});

test("a retraction that fails says why and can be tried again", async () => {
  const { view } = await shown({ answers: {
    [`GET /api/v1/messages/${MESSAGE_ID}`]: () => json(200, document({ tracking: TRACKING })),
    [`POST /api/v1/messages/${MESSAGE_ID}/retract`]: () => json(404, { error: "not_found" }) } });
  view.button("Retract").click();
  const confirm = view.button("Retract message");
  confirm.click();
  for (let i = 0; i < 10 && confirm.disabled; i++) await settle();
  assert.match(view.textContent, /not addressed to you/);
  assert.equal(confirm.disabled, false);
});

test("errors are drawn as an alert, with the portal link when there is one", async () => {
  const { view } = await shown({ answers: {
    [`GET /api/v1/messages/${MESSAGE_ID}`]: () => json(403, {
      error: "question_required", message: "Open it in the secure portal.",
      portal_url: `https://gate.example.org/m/${MESSAGE_ID}` }) } });
  const alert = view.find((n) => n.getAttribute("role") === "alert");
  assert.equal(alert.textContent, "Open it in the secure portal.");
  const link = view.find((n) => n.tagName === "A");
  assert.equal(link.getAttribute("href"), `https://gate.example.org/m/${MESSAGE_ID}`);
  assert.equal(link.getAttribute("rel"), "noopener noreferrer");
});

test("outside a message the pane says what to do", async () => {
  outlook({ read: {}, noItem: true });
  const doc = new FakeDocument();
  await pane.start(doc);
  assert.equal(doc.getElementById("content").textContent, pane.TEXT.noItem);
});

test("the srcdoc document escapes nothing of the body and links the stylesheet safely", () => {
  outlook({ read: {} });
  global.location = { href: 'https://gate.test/a"b/addin/taskpane.html' };
  assert.equal(pane.bodyDocument("<p>x</p>"),
               '<!DOCTYPE html><html><head><meta charset="utf-8"><link rel="stylesheet" ' +
               'href="https://gate.test/a&quot;b/addin/message.css"></head><body><p>x</p>' +
               "</body></html>");
});
