/*
 * Sealgate add-in commands: the compose-mode Encrypt button (toggleEncrypt) and the on-send
 * check (onMessageSendHandler, Smart Alerts).
 *
 * Loaded two ways, so it must work in both:
 *   - by commands.html, after office.js (Outlook on the web, new Outlook on Windows, Mac);
 *   - directly, as the JavaScript-only runtime of classic Outlook on Windows: no page, no
 *     other script files, no DOM, no `location`, and Office.onReady never runs there. So this
 *     file holds everything it needs, registers the handlers at the top level, and is written
 *     in plain ES5 syntax (no arrow functions, no async/await, no modules). Promises are used
 *     at run time: every runtime that raises these events has them (office.js brings its own
 *     where the browser lacks one).
 * Node's test runner loads the same file (module.exports at the end); nothing here reads a
 * global before a handler runs, so each test can put its own Office in place.
 *
 * State lives in the draft itself (the tag header, or the subject keyword), never in a
 * variable: Outlook may start a fresh runtime for every click and every send.
 *
 * Every name in the manifest (ExecuteFunction, LaunchEvent FunctionName) must be registered
 * with Office.actions.associate below; the tests check that they match.
 */
(function (factory) {
  var commands = factory();
  if (typeof module !== "undefined" && module.exports) {
    module.exports = commands;
  }
  // Register at the top level: classic Outlook on Windows never calls Office.onReady here, and
  // with SendMode="SoftBlock" an unregistered handler would hold every send.
  if (typeof Office !== "undefined" && Office.actions && typeof Office.actions.associate === "function") {
    Office.actions.associate("toggleEncrypt", commands.toggleEncrypt);
    Office.actions.associate("togglePortal", commands.togglePortal);
    Office.actions.associate("onMessageSendHandler", commands.onMessageSendHandler);
  }
}(function () {
  "use strict";

  // The milter's triggers (sealgate/mail/triggers.py): this header, or the subject keyword.
  var TAG_HEADER = "X-Sealgate-Encrypt";
  var SUBJECT_KEYWORD = "encrypt/";
  // The sender's request for the secure portal (routing.portal_keywords): also a trigger.
  var PORTAL_KEYWORD = "secure/";
  var PORTAL_NOTICE = "sealgatePortal";
  // The Encrypt button's control id in manifest.xml: the Smart Alerts dialog runs it.
  var ENCRYPT_COMMAND_ID = "SealgateEncryptButton";
  var ENCRYPT_NOTICE = "sealgateEncrypt";
  var SEND_NOTICE = "sealgateSendCheck";
  var ICON = "Icon.16x16";
  var TAG_TIMEOUT_MS = 10000;
  var SCAN_TIMEOUT_MS = 5000;
  var TOKEN_TIMEOUT_MS = 10000;
  // The whole on-send check, token and attachments included; past it the message goes.
  var SEND_CHECK_BUDGET_MS = 20000;
  // Attachment content sent for scanning (the server's own limit is addin.max_scan_mb, 25 MB
  // by default): past these, an attachment is listed by name only.
  var MAX_ATTACHMENT_BYTES = 5 * 1024 * 1024;
  var MAX_ATTACHMENTS_TOTAL_BYTES = 10 * 1024 * 1024;
  var NOTICE_MAX = 150;  // Outlook's limit for a notification message
  var DIALOG_MAX = 500;  // and for the Smart Alerts dialog text

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

  // -- the draft, through Outlook's callback APIs ---------------------------------------------

  function currentItem() {
    return Office.context.mailbox.item;
  }

  function canTag(item) {
    return !!(item.internetHeaders && typeof item.internetHeaders.getAsync === "function" &&
              typeof item.internetHeaders.setAsync === "function");
  }

  /* Whether the draft carries the tag header; false where the header API is missing. */
  function hasTagHeader(item) {
    if (!canTag(item)) {
      return Promise.resolve(false);
    }
    return officeCall(function (done) {
      item.internetHeaders.getAsync([TAG_HEADER], done);
    }).then(function (headers) {
      for (var name in headers || {}) {
        if (Object.prototype.hasOwnProperty.call(headers, name) &&
            name.toLowerCase() === TAG_HEADER.toLowerCase() && headers[name]) {
          return true;
        }
      }
      return false;
    }, function () {
      return false;
    });
  }

  function getSubject(item) {
    return officeCall(function (done) { item.subject.getAsync(done); }).then(function (value) {
      return typeof value === "string" ? value : "";
    });
  }

  function setSubject(item, subject) {
    return officeCall(function (done) { item.subject.setAsync(subject, done); });
  }

  function keywordPattern(keyword) {
    return new RegExp((keyword || SUBJECT_KEYWORD).replace(/[.*+?^${}()|[\]\\\/]/g, "\\$&"),
                      "gi");
  }

  function hasKeyword(subject, keyword) {
    return keywordPattern(keyword).test(subject);
  }

  /* As the milter does it (strip_keywords): every keyword out, the spacing left tidy. */
  function withoutKeyword(subject, keyword) {
    return subject.replace(keywordPattern(keyword), " ").replace(/[ \t]{2,}/g, " ")
      .replace(/^[ \t]+|[ \t]+$/g, "");
  }

  /* {header, keyword}: how the draft is marked to be sent securely, if it is. */
  function encryptionState(item) {
    return Promise.all([
      hasTagHeader(item),
      getSubject(item).then(function (subject) { return hasKeyword(subject); },
                            function () { return false; })
    ]).then(function (found) {
      return { header: found[0], keyword: found[1] };
    });
  }

  function shortened(text, limit) {
    return text.length <= limit ? text : text.slice(0, limit - 1) + "\u2026";
  }

  /* An information bar on the draft; never fails (the bar is a courtesy). */
  function showNotice(item, key, message, isError) {
    var enums = Office.MailboxEnums && Office.MailboxEnums.ItemNotificationMessageType;
    var details = isError ? {
      type: (enums && enums.ErrorMessage) || "errorMessage",
      message: shortened(message, NOTICE_MAX)
    } : {
      type: (enums && enums.InformationalMessage) || "informationalMessage",
      message: shortened(message, NOTICE_MAX),
      icon: ICON,
      persistent: true
    };
    return officeCall(function (done) {
      item.notificationMessages.replaceAsync(key, details, done);
    }).then(null, function () { return undefined; });
  }

  function removeNotice(item, key) {
    return officeCall(function (done) {
      item.notificationMessages.removeAsync(key, done);
    }).then(null, function () { return undefined; });
  }

  function once(finish) {
    var done = false;
    return function (value) {
      if (!done) {
        done = true;
        finish(value);
      }
    };
  }

  // -- Encrypt ----------------------------------------------------------------------------------

  function tokenProblem(error) {
    if (error && error.kind === "token") {
      return "you are not signed in to Sealgate";
    }
    if (error && error.kind === "unsupported") {
      return "this Outlook cannot tag messages";
    }
    if (error && error.kind === "http" && (error.status === 401 || error.status === 403)) {
      return "Sealgate did not accept your sign-in";
    }
    return "Sealgate could not be reached";
  }

  /* Asks the server for a tag and puts it on the draft as the header the milter triggers on. */
  function tagDraft(item) {
    if (!canTag(item)) {
      return Promise.reject(new SealgateError("unsupported", "no internet header API"));
    }
    return getAccessToken().then(function (token) {
      return request("POST", "/tags", { token: token, body: {}, timeoutMs: TAG_TIMEOUT_MS });
    }).then(function (answer) {
      var tag = answer.data || {};
      if (typeof tag.header !== "string" || !/^X-[A-Za-z0-9-]+$/.test(tag.header) ||
          typeof tag.value !== "string" || !tag.value) {
        throw new SealgateError("http", "Sealgate's answer was not a tag", answer.status, tag);
      }
      var headers = {};
      headers[tag.header] = tag.value;
      return officeCall(function (done) { item.internetHeaders.setAsync(headers, done); });
    });
  }

  /* Where no tag can be had: the subject keyword, which the milter also triggers on. */
  function markSubject(item, reason) {
    return getSubject(item).then(function (subject) {
      if (hasKeyword(subject, SUBJECT_KEYWORD)) {
        return undefined;
      }
      return setSubject(item, SUBJECT_KEYWORD + (subject ? " " + subject : ""));
    }).then(function () {
      return showNotice(item, ENCRYPT_NOTICE, "This message will be sent securely: " +
                        SUBJECT_KEYWORD + " was added to the subject (" + reason + ").");
    });
  }

  function encryptOn(item) {
    return tagDraft(item).then(function () {
      return showNotice(item, ENCRYPT_NOTICE, "This message will be sent securely.");
    }, function (error) {
      return markSubject(item, tokenProblem(error));
    });
  }

  function encryptOff(item, state) {
    var steps = [];
    if (state.header) {
      steps.push(officeCall(function (done) {
        item.internetHeaders.removeAsync([TAG_HEADER], done);
      }));
    }
    if (state.keyword) {
      steps.push(getSubject(item).then(function (subject) {
        return setSubject(item, withoutKeyword(subject, SUBJECT_KEYWORD));
      }));
    }
    return Promise.all(steps).then(function () {
      return removeNotice(item, ENCRYPT_NOTICE);
    });
  }

  /* The Encrypt button, and the "Encrypt and send" choice of the on-send dialog: flips the
     draft between "sent securely" and "sent normally". */
  /* A ribbon command: `work(item)` on the draft, and the event completed whatever happens. */
  function command(event, work) {
    var finish = once(function () { event.completed(); });
    var item;
    try {
      item = currentItem();
    } catch (error) {
      finish();
      return Promise.resolve();
    }
    return work(item).then(finish, finish);
  }

  function toggleEncrypt(event) {
    return command(event, function (item) {
      return encryptionState(item).then(function (state) {
        return state.header || state.keyword ? encryptOff(item, state) : encryptOn(item);
      }).then(null, function () {
        return showNotice(item, ENCRYPT_NOTICE, "Sealgate could not mark this message. To " +
                          "send it securely, type " + SUBJECT_KEYWORD + " in the subject.", true);
      });
    });
  }

  /* The Secure portal button: the portal keyword in the subject, on or off. Outside
     recipients then get the portal even when their certificate, key or verified TLS would
     do; the keyword is a trigger too, so the message is protected either way. */
  function togglePortal(event) {
    return command(event, function (item) {
      return getSubject(item).then(function (subject) {
        if (hasKeyword(subject, PORTAL_KEYWORD)) {
          return setSubject(item, withoutKeyword(subject, PORTAL_KEYWORD)).then(function () {
            return removeNotice(item, PORTAL_NOTICE);
          });
        }
        return setSubject(item, PORTAL_KEYWORD + (subject ? " " + subject : ""))
          .then(function () {
            return showNotice(item, PORTAL_NOTICE, "This message will be sent through the " +
                              "secure portal: recipients outside your organisation read it " +
                              "there.");
          });
      }).then(null, function () {
        return showNotice(item, PORTAL_NOTICE, "Sealgate could not mark this message. To " +
                          "send it through the secure portal, type " + PORTAL_KEYWORD +
                          " in the subject.", true);
      });
    });
  }

  // -- on send ----------------------------------------------------------------------------------

  function getBodyText(item) {
    var text = (Office.CoercionType && Office.CoercionType.Text) || "text";
    return officeCall(function (done) { item.body.getAsync(text, done); }).then(function (value) {
      return typeof value === "string" ? value : "";
    });
  }

  function listAttachments(item) {
    if (typeof item.getAttachmentsAsync !== "function") {
      return Promise.resolve([]);
    }
    return officeCall(function (done) { item.getAttachmentsAsync(done); }).then(function (found) {
      return found || [];
    });
  }

  function attachmentContent(item, attachment) {
    if (typeof item.getAttachmentContentAsync !== "function") {
      return Promise.resolve(null);
    }
    return officeCall(function (done) {
      item.getAttachmentContentAsync(attachment.id, done);
    }).then(function (content) {
      var base64 = (Office.MailboxEnums && Office.MailboxEnums.AttachmentContentFormat &&
                    Office.MailboxEnums.AttachmentContentFormat.Base64) || "base64";
      return content && content.format === base64 && typeof content.content === "string" ?
        content.content : null;
    }, function () {
      return null;
    });
  }

  /* Names of every attachment, and the content of files while they fit the budget. */
  function collectAttachments(item) {
    return listAttachments(item).then(function (attachments) {
      var budget = MAX_ATTACHMENTS_TOTAL_BYTES;
      var file = (Office.MailboxEnums && Office.MailboxEnums.AttachmentType &&
                  Office.MailboxEnums.AttachmentType.File) || "file";
      var listed = [];
      var next = Promise.resolve();
      attachments.forEach(function (attachment) {
        var entry = { name: String(attachment.name || "attachment") };
        if (attachment.contentType) {
          entry.content_type = String(attachment.contentType);
        }
        listed.push(entry);
        var size = Number(attachment.size) || 0;
        if (attachment.attachmentType !== file || size > MAX_ATTACHMENT_BYTES || size > budget) {
          return;
        }
        budget -= size;
        next = next.then(function () {
          return attachmentContent(item, attachment).then(function (content) {
            if (content !== null && content.length * 3 / 4 <= MAX_ATTACHMENT_BYTES) {
              entry.content_base64 = content;
            }
          });
        });
      });
      return next.then(function () { return listed; });
    }, function () {
      return [];
    });
  }

  /* Every To, Cc and Bcc address, so the server judges the draft as the gateway will judge
     the message (mail that stays inside the organisation is not held back). A field the
     client cannot read adds nothing: then the server assumes the mail goes outside. */
  function getRecipients(item) {
    var fields = ["to", "cc", "bcc"].filter(function (name) {
      return item[name] && typeof item[name].getAsync === "function";
    });
    return Promise.all(fields.map(function (name) {
      return officeCall(function (done) { item[name].getAsync(done); })
        .then(function (found) { return Array.isArray(found) ? found : []; },
              function () { return []; });
    })).then(function (lists) {
      var addresses = [];
      lists.forEach(function (list) {
        list.forEach(function (entry) {
          var address = entry && typeof entry.emailAddress === "string" ?
            entry.emailAddress.trim() : "";
          if (address.indexOf("@") > 0 && addresses.indexOf(address) < 0) {
            addresses.push(address);
          }
        });
      });
      return addresses;
    });
  }

  function collectDraft(item) {
    return Promise.all([getSubject(item), getBodyText(item), collectAttachments(item),
                        getRecipients(item)])
      .then(function (parts) {
        var draft = { subject: parts[0], body: parts[1], body_type: "text",
                      attachments: parts[2] };
        if (parts[3].length) {
          draft.recipients = parts[3];
        }
        return draft;
      });
  }

  function withoutContent(draft) {
    var smaller = {
      subject: draft.subject, body: draft.body, body_type: draft.body_type,
      attachments: draft.attachments.map(function (entry) {
        var bare = { name: entry.name };
        if (entry.content_type) {
          bare.content_type = entry.content_type;
        }
        return bare;
      })
    };
    if (draft.recipients) {
      smaller.recipients = draft.recipients;
    }
    return smaller;
  }

  function scan(draft, token) {
    return request("POST", "/scan", { token: token, body: draft, timeoutMs: SCAN_TIMEOUT_MS })
      .then(null, function (error) {
        var hadContent = draft.attachments.some(function (entry) {
          return entry.content_base64 !== undefined;
        });
        if (error.kind === "http" && error.status === 413 && hadContent) {
          // Larger than the server takes: the check still runs on the names and the text.
          return request("POST", "/scan", { token: token, body: withoutContent(draft),
                                            timeoutMs: SCAN_TIMEOUT_MS });
        }
        throw error;
      }).then(function (answer) {
        return answer.data || {};
      });
  }

  /* "US Social Security number (2), credit card number": what the server says it found,
     by name only, never the matched text. The DLP engine's findings are objects; this reads
     a human name from `label` (or `name`, `description`, `detector`, `type`) and `count`. */
  function describeFindings(findings) {
    var names = [];
    var counts = {};
    (Array.isArray(findings) ? findings : []).forEach(function (finding) {
      var label = typeof finding === "string" ? finding : finding && (finding.label ||
        finding.name || finding.description || finding.detector || finding.type);
      if (typeof label !== "string") {
        return;
      }
      label = label.replace(/\s+/g, " ").replace(/^ | $/g, "").slice(0, 80);
      if (!label) {
        return;
      }
      var key = label.toLowerCase();
      var count = finding && typeof finding.count === "number" && finding.count > 0 ?
        finding.count : 1;
      if (counts[key] === undefined) {
        names.push(label);
        counts[key] = 0;
      }
      counts[key] += count;
    });
    return names.map(function (label) {
      var count = counts[label.toLowerCase()];
      return count > 1 ? label + " (" + count + ")" : label;
    });
  }

  function supports(version) {
    var requirements = Office.context && Office.context.requirements;
    if (requirements && typeof requirements.isSetSupported === "function") {
      return !!requirements.isSetSupported("Mailbox", version);
    }
    return false;
  }

  /* The Smart Alerts answer for a sensitive draft that is not marked to be sent securely.
     When a policy blocks the content outright, encrypting would not help: say so. */
  function blocked(findings, action) {
    var names = describeFindings(findings);
    var found = names.length ? names.slice(0, 6).join(", ") +
      (names.length > 6 ? " and " + (names.length - 6) + " more" : "") :
      "sensitive information";
    if (action === "block") {
      return {
        allowEvent: false,
        errorMessage: shortened("This message contains " + found + ", which your " +
                                "organisation does not allow to be sent outside it, even " +
                                "securely. Remove it, or ask your administrator.", DIALOG_MAX)
      };
    }
    // Mailbox 1.15: the dialog's button may run a function command (the Encrypt button).
    var offersEncrypt = supports("1.15");
    var how = offersEncrypt ?
      "Select Encrypt and send to send it securely." :
      "Choose Don't Send, then select Encrypt in the Sealgate group to send it securely.";
    var options = {
      allowEvent: false,
      errorMessage: shortened("This message contains " + found + ". " + how, DIALOG_MAX)
    };
    if (offersEncrypt) {
      options.cancelLabel = "Encrypt and send";
      options.commandId = ENCRYPT_COMMAND_ID;
    }
    // Mailbox 1.14: "Send Anyway" stays possible; the gateway applies the policy after send.
    if (Office.MailboxEnums && Office.MailboxEnums.SendModeOverride &&
        Office.MailboxEnums.SendModeOverride.PromptUser) {
      options.sendModeOverride = Office.MailboxEnums.SendModeOverride.PromptUser;
    }
    return options;
  }

  function uncheckedReason(error) {
    if (error && error.kind === "token") {
      return "you are not signed in to Sealgate";
    }
    if (error && error.kind === "timeout") {
      return "Sealgate did not answer in time";
    }
    if (error && error.kind === "http") {
      return "Sealgate answered with an error";
    }
    if (error && error.kind === "office") {
      return "Outlook could not read the draft";
    }
    return "Sealgate could not be reached";
  }

  /* Smart Alerts (OnMessageSend): a marked draft goes at once; otherwise the server's DLP
     scan decides. Whatever goes wrong, the message goes and the sender is told: the milter
     applies the same policy after send, so nothing leaves unchecked. */
  function onMessageSendHandler(event) {
    var finish = once(function (options) { event.completed(options); });
    var item;
    try {
      item = currentItem();
    } catch (error) {
      finish({ allowEvent: true });
      return Promise.resolve();
    }
    var check = encryptionState(item).then(function (state) {
      if (state.header || state.keyword) {
        return { allowEvent: true };
      }
      return Promise.all([
        collectDraft(item),
        withTimeout(getAccessToken(), TOKEN_TIMEOUT_MS, function () {
          return new SealgateError("token", "sign-in did not finish in time");
        })
      ]).then(function (ready) {
        return scan(ready[0], ready[1]);
      }).then(function (result) {
        return result.sensitive === true ? blocked(result.findings, result.action) :
          { allowEvent: true };
      });
    });
    return withTimeout(check, SEND_CHECK_BUDGET_MS, function () {
      return new SealgateError("timeout", "the check took too long");
    }).then(function (options) {
      if (options.allowEvent) {
        return removeNotice(item, SEND_NOTICE).then(function () { finish(options); });
      }
      finish(options);
      return undefined;
    }, function (error) {
      return showNotice(item, SEND_NOTICE, "Sealgate could not check this message before it " +
                        "was sent (" + uncheckedReason(error) + "). The mail gateway still " +
                        "checks it.").then(function () { finish({ allowEvent: true }); });
    }).then(null, function () {
      finish({ allowEvent: true });
    });
  }

  return {
    toggleEncrypt: toggleEncrypt,
    togglePortal: togglePortal,
    onMessageSendHandler: onMessageSendHandler,
    // for the tests
    getAccessToken: getAccessToken,
    apiBase: apiBase,
    describeFindings: describeFindings,
    withoutKeyword: withoutKeyword,
    TAG_HEADER: TAG_HEADER,
    ENCRYPT_COMMAND_ID: ENCRYPT_COMMAND_ID,
    ENCRYPT_NOTICE: ENCRYPT_NOTICE,
    PORTAL_NOTICE: PORTAL_NOTICE,
    SEND_NOTICE: SEND_NOTICE,
    MAX_ATTACHMENT_BYTES: MAX_ATTACHMENT_BYTES
  };
}));
