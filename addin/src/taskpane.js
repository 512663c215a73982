/*
 * Sealgate read-mode task pane: shows a secure message inside Outlook.
 *
 * It recognises a Sealgate notification by its X-Sealgate-Message-Id header (Mailbox 1.8), or
 * else by the secure-message link (/m/<id>) in its body; on the sender's own sent copy, which
 * carries neither, it asks the server for the message by the copy's Message-ID. It then fetches
 * the message with the user's token (Office single sign-on) and shows the sanitised HTML in a
 * sandboxed frame (no script runs there), the attachments to download, and, to the sender,
 * who has opened it and a Retract button.
 *
 * Plain ES5 syntax, like commands.js: the base manifest offers this pane to every Outlook, old
 * ones included, and an old one should get a sentence, not a blank pane. Node's test runner
 * loads this same file (module.exports below) with a stand-in document.
 */
(function (factory) {
  var pane = factory();
  // The script runs in the page's head: the pane is drawn once the body is there too.
  function whenParsed(run) {
    if (document.readyState === "loading") {
      document.addEventListener("DOMContentLoaded", run);
    } else {
      run();
    }
  }
  if (typeof module !== "undefined" && module.exports) {
    module.exports = pane;
  } else if (typeof document !== "undefined") {
    if (typeof Office === "undefined" || typeof Office.onReady !== "function") {
      whenParsed(function () { pane.officeMissing(document); });
    } else {
      Office.onReady(function () {
        whenParsed(function () { pane.start(document); });
      });
    }
  }
}(function () {
  "use strict";

  var HEADER_ID = /^x-sealgate-message-id:[ \t]*<?([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})>?[ \t]*$/im;
  var LINK_ID = /\/m\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(?![0-9a-f-])/i;
  var UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";
  var MAX_INLINE_IMAGES = 20;
  var MAX_INLINE_IMAGE_BYTES = 5 * 1024 * 1024;
  var DOWNLOAD_TIMEOUT_MS = 120000;

  var TEXT = {
    noItem: "Select a message to see its Sealgate details.",
    notSealgate: "This is not a Sealgate secure message.",
    loading: "Opening the secure message\u2026",
    officeMissing: "Outlook's add-in library could not be loaded. Check your connection and " +
                   "open this pane again.",
    signIn: "Sign in to Outlook with your work account to see secure messages here.",
    refused: "Sealgate did not accept your sign-in. Sign out of Outlook and back in, or ask " +
             "your IT team.",
    notYours: "This secure message is not addressed to you, or it no longer exists.",
    retracted: "The sender has withdrawn this message: it can no longer be read.",
    expired: "This message has expired: it can no longer be read.",
    unavailable: "Sealgate is not available right now. Try again in a few minutes.",
    unreachable: "Sealgate could not be reached. Check your connection and try again.",
    timeout: "Sealgate did not answer in time. Try again.",
    unsupported: "This version of Outlook cannot show secure messages here. Open the link " +
                 "in the message instead.",
    office: "Outlook could not read this message.",
    retractConfirm: "Recipients will no longer be able to read this message. Retract it?",
    retractedDone: "Retracted: recipients can no longer read this message.",
    saveToMailbox: "Save to mailbox",
    saveNote: "Put the full message in your mailbox in place of this notice, so it can be " +
      "searched and kept like any other mail.",
    saving: "Saving to your mailbox\u2026",
    saved: "Saved: the full message is now in your mailbox.",
    savedKeptNotice: "Saved: the full message is now in your mailbox (this notice could not " +
      "be removed; you may delete it)."
  };

  // ---- shared by commands.js and taskpane.js: begin (identical in both; a test checks) ----
  var API_PREFIX = "/api/v1";

  /* kind: "token" (no sign-in), "unreachable", "timeout", "http" (status, data),
     "office" (an Outlook call failed), "unsupported" (this Outlook lacks what is needed). */
  function SealgateError(kind, message, status, data) {
    this.name = "SealgateError";
    this.kind = kind;
    this.message = message;
    this.status = status || 0;
    this.data = data || null;
  }
  SealgateError.prototype = Object.create(Error.prototype);
  SealgateError.prototype.constructor = SealgateError;

  function withTimeout(promise, ms, timedOut) {
    return new Promise(function (resolve, reject) {
      var timer = setTimeout(function () { reject(timedOut()); }, ms);
      promise.then(function (value) {
        clearTimeout(timer);
        resolve(value);
      }, function (error) {
        clearTimeout(timer);
        reject(error);
      });
    });
  }

  /* One Office callback API as a promise of asyncResult.value, e.g.
     officeCall(function (done) { item.subject.getAsync(done); }). */
  function officeCall(invoke) {
    return new Promise(function (resolve, reject) {
      var failed = (Office.AsyncResultStatus && Office.AsyncResultStatus.Failed) || "failed";
      try {
        invoke(function (result) {
          if (result && result.status === failed) {
            var error = result.error || {};
            reject(new SealgateError("office", error.message || "Outlook could not do this", 0,
                                     { code: error.code, name: error.name }));
          } else {
            resolve(result ? result.value : undefined);
          }
        });
      } catch (thrown) {
        reject(new SealgateError("office", (thrown && thrown.message) || String(thrown)));
      }
    });
  }

  /* The one place an access token for the Sealgate API comes from: Office single sign-on.
     Nested app authentication (MSAL) can replace this function alone. */
  function getAccessToken() {
    var auth = (typeof OfficeRuntime !== "undefined" && OfficeRuntime.auth) ||
               (typeof Office !== "undefined" && Office.auth);
    if (!auth || typeof auth.getAccessToken !== "function") {
      return Promise.reject(new SealgateError("token", "single sign-on is not available here"));
    }
    return new Promise(function (resolve, reject) {
      function refused(error) {
        reject(new SealgateError("token", (error && error.message) || "sign-in failed", 0,
                                 { code: error && error.code }));
      }
      try {
        auth.getAccessToken({ allowSignInPrompt: true, allowConsentPrompt: true })
          .then(function (token) {
            if (typeof token === "string" && token) {
              resolve(token);
            } else {
              refused({ message: "no token was issued" });
            }
          }, refused);
      } catch (thrown) {
        refused(thrown);
      }
    });
  }

  /* The Sealgate server: the origin (and any path prefix) these files are served from, i.e.
     what precedes /addin/ in the page's address, or in classic Outlook on Windows (no page)
     in the address of this script (Office.context.urls, Mailbox 1.14). */
  function apiBase() {
    var found = [];
    if (typeof location !== "undefined" && location && location.href) {
      found.push(String(location.href));
    }
    var urls = typeof Office !== "undefined" && Office.context && Office.context.urls;
    if (urls && urls.javascriptRuntimeUrl) {
      found.push(String(urls.javascriptRuntimeUrl));
    }
    for (var i = 0; i < found.length; i++) {
      var match = /^(https?:\/\/[^\/?#]+(?:\/[^?#]*?)?)\/addin\//i.exec(found[i]);
      if (match) {
        return match[1];
      }
    }
    throw new SealgateError("unsupported", "the address of the Sealgate server is unknown");
  }

  /* A call to the Sealgate API: resolves with {status, data} (data: parsed JSON, or with
     options.as "blob"/"arrayBuffer" the body as such); rejects with a SealgateError. Never
     sends cookies: the bearer token is the only credential. */
  function request(method, path, options) {
    options = options || {};
    var url;
    try {
      url = apiBase() + API_PREFIX + path;
    } catch (error) {
      return Promise.reject(error);
    }
    if (typeof fetch !== "function") {
      return Promise.reject(new SealgateError("unsupported", "this Outlook cannot call Sealgate"));
    }
    var controller = typeof AbortController === "function" ? new AbortController() : null;
    var headers = { "Accept": "application/json", "Authorization": "Bearer " + options.token };
    var init = { method: method, headers: headers, credentials: "omit", cache: "no-store" };
    if (options.body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(options.body);
    }
    if (controller) {
      init.signal = controller.signal;
    }
    var answered = fetch(url, init).then(function (response) {
      if (response.ok && (options.as === "blob" || options.as === "arrayBuffer")) {
        return response[options.as]().then(function (body) {
          return { status: response.status, data: body };
        });
      }
      return response.text().then(function (text) {
        var data = null;
        try {
          data = text ? JSON.parse(text) : null;
        } catch (notJson) {
          data = null;
        }
        if (!response.ok) {
          throw new SealgateError("http", (data && data.message) ||
                                  "Sealgate answered " + response.status, response.status, data);
        }
        return { status: response.status, data: data };
      });
    }, function () {
      throw new SealgateError("unreachable", "Sealgate could not be reached");
    });
    return withTimeout(answered, options.timeoutMs || 15000, function () {
      if (controller) {
        controller.abort();
      }
      return new SealgateError("timeout", "Sealgate did not answer in time");
    });
  }
  // ---- shared by commands.js and taskpane.js: end ----

  // -- which secure message this is -------------------------------------------------------------

  function headerMessageId(headers) {
    var unfolded = String(headers || "").replace(/\r?\n[ \t]+/g, " ");
    var match = HEADER_ID.exec(unfolded);
    return match ? match[1].toLowerCase() : null;
  }

  function bodyMessageId(body) {
    var match = LINK_ID.exec(String(body || ""));
    return match ? match[1].toLowerCase() : null;
  }

  function idFromHeaders(item) {
    if (typeof item.getAllInternetHeadersAsync !== "function") {
      return Promise.resolve(null);
    }
    return officeCall(function (done) {
      item.getAllInternetHeadersAsync(done);
    }).then(headerMessageId, function () { return null; });
  }

  function idFromBody(item) {
    if (!item.body || typeof item.body.getAsync !== "function") {
      return Promise.resolve(null);
    }
    var kinds = Office.CoercionType || {};
    function read(kind) {
      return officeCall(function (done) { item.body.getAsync(kind, done); })
        .then(bodyMessageId, function () { return null; });
    }
    return read(kinds.Html || "html").then(function (found) {
      return found || read(kinds.Text || "text");
    });
  }

  /* The id from the notification itself: its header, else the link in its body. */
  function findMessageId(item) {
    return idFromHeaders(item).then(function (found) {
      return found || idFromBody(item);
    });
  }

  function address(value) {
    return String((value && value.emailAddress) || "").replace(/^\s+|\s+$/g, "").toLowerCase();
  }

  /* Whether this is the user's own sent copy, which carries the original rather than the
     notification: the server knows that message by the Message-ID it was sent with. */
  function sentByMe(item) {
    var mailbox = Office.context.mailbox;
    var me = address(mailbox && mailbox.userProfile);
    return !!me && address(item.from) === me && typeof item.internetMessageId === "string" &&
      item.internetMessageId.length > 0;
  }

  function idFromSentCopy(item, token) {
    return request("GET", "/messages?internet_message_id=" +
                   encodeURIComponent(item.internetMessageId), { token: token })
      .then(function (answer) {
        var listed = answer.data && answer.data.messages;
        var first = Array.isArray(listed) && listed.length ? listed[0] : null;
        return first && typeof first.id === "string" && new RegExp("^" + UUID + "$", "i")
          .test(first.id) ? first.id.toLowerCase() : null;
      }, function () {
        return null;
      });
  }

  // -- what to say when it goes wrong -------------------------------------------------------------

  function describeError(error) {
    var data = (error && error.data) || {};
    if (!error || !error.kind) {
      return TEXT.unreachable;
    }
    if (error.kind === "token") {
      return TEXT.signIn + (data.code ? " (Office error " + data.code + ")" : "");
    }
    if (error.kind === "unsupported") {
      return TEXT.unsupported;
    }
    if (error.kind === "timeout") {
      return TEXT.timeout;
    }
    if (error.kind === "office") {
      return TEXT.office;
    }
    if (error.kind !== "http") {
      return TEXT.unreachable;
    }
    if (error.status === 401 || (error.status === 403 && data.error === "missing_scope")) {
      return TEXT.refused;
    }
    if (error.status === 403 && typeof data.message === "string") {
      return data.message;
    }
    if (error.status === 404) {
      return TEXT.notYours;
    }
    if (error.status === 410) {
      return data.state === "expired" || data.error === "expired" ? TEXT.expired : TEXT.retracted;
    }
    if (error.status === 503) {
      return TEXT.unavailable;
    }
    if ((error.status === 429 || error.status === 502) && typeof data.message === "string") {
      return data.message;  // the mailbox's own answer, put for the user by the server
    }
    return "Sealgate could not show this message (error " + error.status + ").";
  }

  function errorModel(error) {
    var data = (error && error.data) || {};
    var model = { kind: "error", text: describeError(error) };
    if (typeof data.portal_url === "string" && /^https:\/\//i.test(data.portal_url)) {
      model.link = data.portal_url;
    }
    return model;
  }

  // -- the message ----------------------------------------------------------------------------------

  function base64Of(buffer) {
    var bytes = new Uint8Array(buffer);
    var chunks = [];
    for (var i = 0; i < bytes.length; i += 0x8000) {
      chunks.push(String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000)));
    }
    return btoa(chunks.join(""));
  }

  /* The body's inline images point at the API (cid: parts), which wants the token an <img>
     cannot send: each is fetched here and put in as a data: URL; what cannot be, goes. */
  function inlineImages(html, messageId, token) {
    var pattern = new RegExp("[^\"'\\s<>]*/api/v1/messages/(" + UUID + ")/parts/(" + UUID +
                             ")", "gi");
    var found = {};
    var order = [];
    var match;
    while ((match = pattern.exec(html)) !== null) {
      if (found[match[0]] === undefined) {
        found[match[0]] = { message: match[1].toLowerCase(), part: match[2].toLowerCase() };
        order.push(match[0]);
      }
    }
    return Promise.all(order.map(function (url, index) {
      var ref = found[url];
      if (index >= MAX_INLINE_IMAGES || ref.message !== messageId) {
        return Promise.resolve("");
      }
      return request("GET", "/messages/" + messageId + "/parts/" + ref.part,
                     { token: token, as: "blob" }).then(function (answer) {
        var blob = answer.data;
        var type = String((blob && blob.type) || "").split(";")[0].toLowerCase();
        if (!/^image\/(png|gif|jpeg|webp|bmp)$/.test(type) || blob.size > MAX_INLINE_IMAGE_BYTES) {
          return "";
        }
        return blob.arrayBuffer().then(function (buffer) {
          return "data:" + type + ";base64," + base64Of(buffer);
        });
      }).then(null, function () {
        return "";
      });
    })).then(function (replacements) {
      var result = html;
      order.forEach(function (url, index) {
        result = result.split(url).join(replacements[index]);
      });
      return result;
    });
  }

  /* The frame's whole document: the sanitised body and the add-in's own stylesheet. */
  function bodyDocument(html) {
    var stylesheet;
    try {
      stylesheet = apiBase() + "/addin/message.css";
    } catch (unknown) {
      stylesheet = "message.css";
    }
    return "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><link rel=\"stylesheet\" href=\"" +
      stylesheet.replace(/&/g, "&amp;").replace(/"/g, "&quot;") + "\"></head><body>" + html +
      "</body></html>";
  }

  function fetchMessage(messageId, token) {
    return request("GET", "/messages/" + messageId, { token: token }).then(function (answer) {
      var message = answer.data || {};
      return inlineImages(typeof message.html === "string" ? message.html : "", messageId, token)
        .then(function (html) {
          return { kind: "message", id: messageId, message: message, bodyHtml: html };
        });
    });
  }

  /* The model of what the pane shows for this item; never rejects. */
  function loadMessage(item) {
    if (!item) {
      return Promise.resolve({ kind: "info", text: TEXT.noItem });
    }
    return findMessageId(item).then(function (found) {
      if (!found && !sentByMe(item)) {
        return { kind: "info", text: TEXT.notSealgate };
      }
      return getAccessToken().then(function (token) {
        return (found ? Promise.resolve(found) : idFromSentCopy(item, token))
          .then(function (messageId) {
            return messageId ? fetchMessage(messageId, token) :
              { kind: "info", text: TEXT.notSealgate };
          });
      }, function (error) {
        // Without a token, an item with no Sealgate mark is simply not one of ours.
        if (!found) {
          return { kind: "info", text: TEXT.notSealgate };
        }
        throw error;
      });
    }).then(null, errorModel);
  }

  function retract(messageId) {
    return getAccessToken().then(function (token) {
      return request("POST", "/messages/" + messageId + "/retract", { token: token, body: {} });
    }).then(function (answer) {
      return (answer.data && answer.data.state) || "retracted";
    });
  }

  /* The item Outlook has open, as EWS names it and as the REST API (Graph) does. */
  function openItemIds() {
    var mailbox = Office.context && Office.context.mailbox;
    var itemId = mailbox && mailbox.item && mailbox.item.itemId;
    if (!itemId) {
      return null;
    }
    var restId = "";
    try {
      var version = Office.MailboxEnums && Office.MailboxEnums.RestVersion &&
        Office.MailboxEnums.RestVersion.v2_0;
      restId = typeof mailbox.convertToRestId === "function" ?
        mailbox.convertToRestId(itemId, version || "v2.0") : "";
    } catch (error) {
      restId = "";
    }
    return { item_id: itemId, rest_id: restId || "" };
  }

  function saveToMailbox(messageId) {
    var ids = openItemIds();
    if (!ids) {
      return Promise.reject(new SealgateError("office", "Outlook did not name this item"));
    }
    return getAccessToken().then(function (token) {
      return request("POST", "/messages/" + messageId + "/mailbox",
                     { token: token, body: ids, timeoutMs: DOWNLOAD_TIMEOUT_MS });
    }).then(function (answer) {
      return answer.data || {};
    });
  }

  function downloadPart(messageId, partId) {
    return getAccessToken().then(function (token) {
      return request("GET", "/messages/" + messageId + "/parts/" + partId,
                     { token: token, as: "blob", timeoutMs: DOWNLOAD_TIMEOUT_MS });
    }).then(function (answer) {
      return answer.data;
    });
  }

  // -- drawing ------------------------------------------------------------------------------------

  function el(doc, tag, attributes, children) {
    var node = doc.createElement(tag);
    var name;
    for (name in attributes || {}) {
      if (Object.prototype.hasOwnProperty.call(attributes, name)) {
        if (name === "text") {
          node.textContent = attributes[name];
        } else {
          node.setAttribute(name, attributes[name]);
        }
      }
    }
    (children || []).forEach(function (child) {
      if (child) {
        node.appendChild(child);
      }
    });
    return node;
  }

  function clear(node) {
    while (node.firstChild) {
      node.removeChild(node.firstChild);
    }
  }

  function when(iso) {
    if (!iso) {
      return "";
    }
    var moment = new Date(iso);
    return isNaN(moment.getTime()) ? String(iso) : moment.toLocaleString();
  }

  function size(bytes) {
    var value = Number(bytes) || 0;
    if (value < 1024) {
      return value + " bytes";
    }
    if (value < 1024 * 1024) {
      return Math.round(value / 1024) + " KB";
    }
    return (Math.round(value / 1024 / 102.4) / 10) + " MB";
  }

  function saveBlob(doc, blob, filename) {
    var url = URL.createObjectURL(blob);
    var link = el(doc, "a", { href: url, download: filename, hidden: "" });
    doc.body.appendChild(link);
    link.click();
    doc.body.removeChild(link);
    setTimeout(function () { URL.revokeObjectURL(url); }, 60000);
  }

  function attachmentsSection(doc, model) {
    var attachments = model.message.attachments || [];
    if (!attachments.length) {
      return null;
    }
    var list = el(doc, "ul", { "class": "attachments" });
    attachments.forEach(function (attachment) {
      var name = String(attachment.filename || "attachment");
      var note = el(doc, "span", { "class": "note", role: "status" });
      var button = el(doc, "button", { type: "button", text: "Download",
                                       "aria-label": "Download " + name });
      button.addEventListener("click", function () {
        button.disabled = true;
        note.textContent = "Downloading\u2026";
        downloadPart(model.id, attachment.id).then(function (blob) {
          saveBlob(doc, blob, name);
          note.textContent = "";
        }, function (error) {
          note.textContent = describeError(error);
        }).then(function () {
          button.disabled = false;
        });
      });
      list.appendChild(el(doc, "li", {}, [
        el(doc, "span", { "class": "filename", text: name }),
        el(doc, "span", { "class": "size", text: size(attachment.size) }),
        button, note
      ]));
    });
    return el(doc, "section", { "aria-labelledby": "attachments-heading" }, [
      el(doc, "h3", { id: "attachments-heading", text: "Attachments" }), list
    ]);
  }

  function trackingSection(doc, model) {
    var tracking = model.message.tracking;
    if (!tracking || !Array.isArray(tracking.recipients)) {
      return null;
    }
    var rows = tracking.recipients.map(function (recipient) {
      return el(doc, "tr", {}, [
        el(doc, "td", { text: String(recipient.address || "") }),
        el(doc, "td", { text: recipient.first_opened_at ? when(recipient.first_opened_at) +
                          (recipient.last_opened_at &&
                           recipient.last_opened_at !== recipient.first_opened_at ?
                           " (last " + when(recipient.last_opened_at) + ")" : "") :
                          "Not yet" }),
        el(doc, "td", { text: String(Number(recipient.downloads) || 0) })
      ]);
    });
    var table = el(doc, "table", { "class": "tracking" }, [
      el(doc, "thead", {}, [el(doc, "tr", {}, [
        el(doc, "th", { scope: "col", text: "Recipient" }),
        el(doc, "th", { scope: "col", text: "Opened" }),
        el(doc, "th", { scope: "col", text: "Downloads" })
      ])]),
      el(doc, "tbody", {}, rows)
    ]);
    var actions = el(doc, "div", { "class": "actions" });
    var section = el(doc, "section", { "aria-labelledby": "tracking-heading" }, [
      el(doc, "h3", { id: "tracking-heading", text: "Who has opened it" }), table, actions
    ]);
    function offerRetract() {
      clear(actions);
      var button = el(doc, "button", { type: "button", "class": "danger", text: "Retract" });
      button.addEventListener("click", confirmRetract);
      actions.appendChild(button);
    }
    function confirmRetract() {
      clear(actions);
      var yes = el(doc, "button", { type: "button", "class": "danger", text: "Retract message" });
      var no = el(doc, "button", { type: "button", text: "Cancel" });
      var note = el(doc, "p", { "class": "note", role: "status", text: TEXT.retractConfirm });
      no.addEventListener("click", offerRetract);
      yes.addEventListener("click", function () {
        yes.disabled = true;
        no.disabled = true;
        note.textContent = "Retracting\u2026";
        retract(model.id).then(function () {
          clear(actions);
          actions.appendChild(el(doc, "p", { "class": "done", role: "status",
                                             text: TEXT.retractedDone }));
        }, function (error) {
          note.textContent = describeError(error);
          yes.disabled = false;
          no.disabled = false;
        });
      });
      actions.appendChild(note);
      actions.appendChild(yes);
      actions.appendChild(no);
    }
    offerRetract();
    return section;
  }

  /* "Save to mailbox" for a recipient inside the organisation; done at once with auto. */
  function mailboxSection(doc, model) {
    var offer = model.message.mailbox;
    if (!offer || !offer.available) {
      return null;
    }
    var button = el(doc, "button", { type: "button", text: TEXT.saveToMailbox });
    var note = el(doc, "p", { "class": "note", role: "status", text: TEXT.saveNote });
    function save() {
      button.disabled = true;
      note.textContent = TEXT.saving;
      saveToMailbox(model.id).then(function (answer) {
        if (button.parentNode) {
          button.parentNode.removeChild(button);
        }
        note.textContent = answer.placeholder_removed === false ? TEXT.savedKeptNotice :
          TEXT.saved;
      }, function (error) {
        note.textContent = describeError(error);
        button.disabled = false;
      });
    }
    button.addEventListener("click", save);
    if (offer.auto) {
      save();
    }
    return el(doc, "section", { "class": "actions", "aria-label": TEXT.saveToMailbox },
              [button, note]);
  }

  function messageView(doc, model) {
    var message = model.message;
    var sender = message.sender_name && message.sender_name !== message.sender ?
      message.sender_name + " <" + message.sender + ">" : String(message.sender || "");
    var frame = el(doc, "iframe", {
      "class": "body",
      title: "Message text",
      // No script, no same origin: the server sanitised the HTML, and this keeps it inert.
      // Links may still open, in a new window outside the sandbox.
      sandbox: "allow-popups allow-popups-to-escape-sandbox",
      referrerpolicy: "no-referrer",
      srcdoc: bodyDocument(model.bodyHtml)
    });
    return el(doc, "article", { "class": "message" }, [
      el(doc, "h2", { "class": "subject", text: String(message.subject || "(no subject)") }),
      el(doc, "p", { "class": "meta", text: "From " + sender +
                     (message.created_at ? ", " + when(message.created_at) : "") }),
      frame,
      attachmentsSection(doc, model),
      mailboxSection(doc, model),
      trackingSection(doc, model)
    ]);
  }

  function render(doc, view, model) {
    clear(view);
    if (model.kind === "message") {
      view.appendChild(messageView(doc, model));
    } else if (model.kind === "error") {
      view.appendChild(el(doc, "p", { "class": "error", role: "alert", text: model.text }));
      if (model.link) {
        view.appendChild(el(doc, "p", {}, [el(doc, "a", {
          href: model.link, target: "_blank", rel: "noopener noreferrer",
          text: "Open it in the secure portal" })]));
      }
    } else {
      view.appendChild(el(doc, "p", { "class": "note", role: "status",
                                      text: model.kind === "loading" ? TEXT.loading : model.text }));
    }
  }

  function show(doc, view) {
    var mailbox = Office.context && Office.context.mailbox;
    var item = mailbox && mailbox.item;
    render(doc, view, { kind: "loading" });
    return loadMessage(item).then(function (model) {
      render(doc, view, model);
      return model;
    });
  }

  function start(doc) {
    var view = doc.getElementById("content");
    var mailbox = Office.context && Office.context.mailbox;
    if (!mailbox) {
      render(doc, view, { kind: "info", text: TEXT.noItem });
      return Promise.resolve({ kind: "info", text: TEXT.noItem });
    }
    // A pinned pane stays open from one selected message to the next.
    if (typeof mailbox.addHandlerAsync === "function" && Office.EventType &&
        Office.EventType.ItemChanged) {
      mailbox.addHandlerAsync(Office.EventType.ItemChanged, function () { show(doc, view); });
    }
    return show(doc, view);
  }

  function officeMissing(doc) {
    var view = doc.getElementById("content");
    if (view) {
      render(doc, view, { kind: "error", text: TEXT.officeMissing });
    }
  }

  return {
    start: start,
    officeMissing: officeMissing,
    // for the tests
    headerMessageId: headerMessageId,
    bodyMessageId: bodyMessageId,
    findMessageId: findMessageId,
    loadMessage: loadMessage,
    describeError: describeError,
    inlineImages: inlineImages,
    bodyDocument: bodyDocument,
    render: render,
    TEXT: TEXT
  };
}));
