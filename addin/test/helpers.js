"use strict";
/*
 * Test doubles for the add-in's node tests: an Outlook mailbox item built with
 * office-addin-mock (the global Office the add-in's files read), a token source, a fetch that
 * answers from a table, and a small stand-in document for the task pane's drawing.
 */
const { OfficeMockObject } = require("office-addin-mock");

const BASE = "https://sealgate.test";
const TOKEN = "header.payload.signature";
const MESSAGE_ID = "0b6a4b7e-5c1d-4d2e-9f3a-1234567890ab";

function succeeded(value) {
  return { status: "succeeded", value };
}

function failed(message, code = 9000) {
  return { status: "failed", error: { message, code, name: "Failure" } };
}

/*
 * The global Office for one test: a mailbox item in compose or read mode whose Office calls
 * change `state` and are logged in `state.calls`. Options:
 *   headers (compose: the draft's internet headers), subject, body, attachments
 *     ([{id, name, size, contentType, attachmentType, content, format}]),
 *   headerApi (false: no item.internetHeaders, as below Mailbox 1.8),
 *   mailbox: the highest Mailbox requirement set the client supports ("1.15"),
 *   read: {allHeaders, htmlBody, textBody, from, internetMessageId, me} for read mode,
 *   fail: {method: message} to make that Office call fail.
 */
function outlook(options = {}) {
  const state = {
    headers: Object.assign({}, options.headers || {}),
    subject: options.subject === undefined ? "Quarterly figures" : options.subject,
    body: options.body === undefined ? "Hello" : options.body,
    attachments: options.attachments || [],
    notices: {},
    calls: [],
    associated: {},
  };
  const fail = options.fail || {};
  const version = options.mailbox || "1.15";

  function answer(method, callback, value) {
    state.calls.push(method);
    callback(fail[method] ? failed(fail[method]) : succeeded(value));
  }

  const item = {
    subject: {
      getAsync: (callback) => answer("subject.getAsync", callback, state.subject),
      setAsync: (value, callback) => {
        if (!fail["subject.setAsync"]) state.subject = value;
        answer("subject.setAsync", callback);
      },
    },
    body: {
      getAsync: (kind, callback) => answer(`body.getAsync(${kind})`, callback,
        kind === "html" && options.read ? options.read.htmlBody || "" :
          options.read ? options.read.textBody || "" : state.body),
    },
    notificationMessages: {
      replaceAsync: (key, details, callback) => {
        state.notices[key] = details;
        answer("notificationMessages.replaceAsync", callback);
      },
      removeAsync: (key, callback) => {
        const known = key in state.notices;
        delete state.notices[key];
        state.calls.push("notificationMessages.removeAsync");
        callback(known ? succeeded() : failed("The key wasn't found.", 9020));
      },
    },
    ...Object.fromEntries(["to", "cc", "bcc"].filter((field) => options[field]).map(
      (field) => [field, { getAsync: (callback) => answer(`${field}.getAsync`, callback,
        options[field].map((emailAddress) => ({ emailAddress, displayName: "" }))) }])),
    getAttachmentsAsync: (callback) => answer("getAttachmentsAsync", callback,
      state.attachments.map(({ id, name, size, contentType, attachmentType, isInline }) =>
        ({ id, name, size, contentType, attachmentType: attachmentType || "file",
           isInline: !!isInline }))),
    getAttachmentContentAsync: (id, callback) => {
      const found = state.attachments.find((a) => a.id === id);
      answer(`getAttachmentContentAsync(${id})`, callback,
        { format: found.format || "base64", content: found.content });
    },
  };
  if (options.headerApi !== false) {
    item.internetHeaders = {
      getAsync: (names, callback) => {
        const value = {};
        for (const name of names) {
          const key = Object.keys(state.headers).find((k) => k.toLowerCase() === name.toLowerCase());
          if (key) value[key] = state.headers[key];
        }
        answer("internetHeaders.getAsync", callback, value);
      },
      setAsync: (headers, callback) => {
        if (!fail["internetHeaders.setAsync"]) Object.assign(state.headers, headers);
        answer("internetHeaders.setAsync", callback);
      },
      removeAsync: (names, callback) => {
        for (const name of names) {
          for (const key of Object.keys(state.headers)) {
            if (key.toLowerCase() === name.toLowerCase()) delete state.headers[key];
          }
        }
        answer("internetHeaders.removeAsync", callback);
      },
    };
  }
  if (options.read) {
    item.getAllInternetHeadersAsync = (callback) =>
      answer("getAllInternetHeadersAsync", callback, options.read.allHeaders || "");
    if (options.read.from) item.from = { emailAddress: options.read.from };
    if (options.read.internetMessageId) item.internetMessageId = options.read.internetMessageId;
    if (options.read.noHeaderApi) delete item.getAllInternetHeadersAsync;
  }

  const mailboxEnums = {
    ItemNotificationMessageType: { InformationalMessage: "informationalMessage",
                                   ErrorMessage: "errorMessage" },
    AttachmentType: { File: "file", Item: "item", Cloud: "cloud" },
    AttachmentContentFormat: { Base64: "base64", Url: "url", Eml: "eml", ICalendar: "iCalendar" },
  };
  if (atLeast(version, "1.14")) {
    mailboxEnums.SendModeOverride = { PromptUser: "promptUser" };
  }
  const mailbox = { item };
  if (options.read && options.read.me) {
    mailbox.userProfile = { emailAddress: options.read.me };
  }
  global.Office = new OfficeMockObject({
    host: "outlook",
    AsyncResultStatus: { Succeeded: "succeeded", Failed: "failed" },
    CoercionType: { Text: "text", Html: "html" },
    EventType: { ItemChanged: "olkItemSelectedChanged" },
    MailboxEnums: mailboxEnums,
    context: {
      mailbox,
      requirements: {
        isSetSupported: (name, wanted) => name === "Mailbox" && atLeast(version, wanted),
      },
    },
    actions: {
      associate: (name, handler) => { state.associated[name] = handler; },
    },
    onReady: (callback) => callback({ host: "Outlook", platform: "OfficeOnline" }),
  });
  if (options.noItem) {
    global.Office.context.mailbox.item = null;
  }
  global.location = { href: `${BASE}/addin/${options.read ? "taskpane" : "commands"}.html` };
  return state;
}

function atLeast(version, wanted) {
  const [a, b] = version.split(".").map(Number);
  const [c, d] = wanted.split(".").map(Number);
  return a > c || (a === c && b >= d);
}

/* OfficeRuntime.auth.getAccessToken answers `token`, or refuses with `error`. */
function signIn(token = TOKEN, error = null) {
  const log = [];
  global.OfficeRuntime = {
    auth: {
      getAccessToken: (options) => {
        log.push(options);
        return error ? Promise.reject(error) : Promise.resolve(token);
      },
    },
  };
  return log;
}

function json(status, data, headers = {}) {
  return new Response(data === undefined ? "" : JSON.stringify(data),
    { status, headers: Object.assign({ "Content-Type": "application/json" }, headers) });
}

/*
 * global.fetch answering from `respond({url, path, method, headers, body, init})`, which
 * returns a Response (or a promise of one), or throws to stand for a network failure.
 * Every request lands in the returned list.
 */
function serve(respond) {
  const requests = [];
  global.fetch = (url, init = {}) => {
    const seen = {
      url,
      path: url.startsWith(BASE) ? url.slice(BASE.length) : url,
      method: init.method || "GET",
      headers: init.headers || {},
      body: init.body ? JSON.parse(init.body) : undefined,
      init,
    };
    requests.push(seen);
    try {
      return Promise.resolve(respond(seen));
    } catch (error) {
      return Promise.reject(error);
    }
  };
  return requests;
}

function unreachable() {
  return serve(() => { throw new TypeError("fetch failed"); });
}

/* Resolves once every promise callback queued so far (and those they queue) has run. */
function settle() {
  return new Promise((resolve) => setImmediate(resolve));
}

function reset() {
  delete global.Office;
  delete global.OfficeRuntime;
  delete global.fetch;
  delete global.location;
}

// -- a small stand-in for the task pane's document ---------------------------------------------

class FakeElement {
  constructor(tag, doc) {
    this.tagName = tag.toUpperCase();
    this.ownerDocument = doc;
    this.childNodes = [];
    this.attributes = {};
    this.listeners = {};
    this.parentNode = null;
    this.ownText = "";
    this.disabled = false;
  }

  get firstChild() { return this.childNodes[0] || null; }

  appendChild(child) {
    child.parentNode = this;
    this.childNodes.push(child);
    return child;
  }

  removeChild(child) {
    this.childNodes.splice(this.childNodes.indexOf(child), 1);
    child.parentNode = null;
    return child;
  }

  setAttribute(name, value) { this.attributes[name] = String(value); }

  getAttribute(name) { return name in this.attributes ? this.attributes[name] : null; }

  set textContent(value) {
    this.childNodes = [];
    this.ownText = String(value);
  }

  get textContent() {
    return this.ownText + this.childNodes.map((child) => child.textContent).join("");
  }

  addEventListener(type, listener) {
    (this.listeners[type] = this.listeners[type] || []).push(listener);
  }

  click() {
    this.ownerDocument.clicked.push(this);
    for (const listener of this.listeners.click || []) listener({ type: "click", target: this });
  }

  /* Every element below this one (depth first) that `test` accepts. */
  findAll(test) {
    const found = [];
    for (const child of this.childNodes) {
      if (test(child)) found.push(child);
      found.push(...child.findAll(test));
    }
    return found;
  }

  find(test) { return this.findAll(test)[0] || null; }

  button(label) {
    return this.find((node) => node.tagName === "BUTTON" && node.textContent === label);
  }
}

class FakeDocument {
  constructor() {
    this.clicked = [];
    this.body = new FakeElement("body", this);
    this.content = this.body.appendChild(new FakeElement("div", this));
    this.content.setAttribute("id", "content");
  }

  createElement(tag) { return new FakeElement(tag, this); }

  getElementById(id) {
    return this.body.find((node) => node.getAttribute("id") === id);
  }
}

module.exports = {
  BASE, TOKEN, MESSAGE_ID, outlook, signIn, serve, unreachable, json, settle, reset,
  succeeded, failed, FakeDocument,
};
