/*
 * The host half of office.js, for the browser tests (tests/integration/test_addin_browser.py):
 * served in place of https://appsforoffice.microsoft.com/lib/1/hosted/office.js.
 *
 * Why a stand-in: the real office.js (npm @microsoft/office-js) is a loader. Outside an Office
 * host it finds no host information (Outlook passes it in the frame's address or name, or in
 * window.external on Windows), loads its Office 2013 compatibility table, restarts its
 * namespace (dropping what Office.actions.associate registered at the top level), never
 * defines Office.context.mailbox (Outlook supplies the item over its private postMessage
 * channel), and opens Microsoft's telemetry frame. The tests load it too, to check that the
 * pages start with it; this file stands in for the part only Outlook can provide.
 *
 * Configured before any script runs by `window.__sealgateOffice` (page.add_init_script):
 *   mode: "compose" | "read"; token: the access token OfficeRuntime.auth hands out (none:
 *   sign-in fails); user: the mailbox's address; mailbox: highest Mailbox requirement set
 *   ("1.15"); compose: subject, headers ({name: value}), body; read: subject, allHeaders
 *   (the raw header block), htmlBody, textBody, from, internetMessageId.
 * Exposes `window.__officeStub`: handlers (what Office.actions.associate registered), run(name)
 * (calls a handler as Outlook would; resolves with what it passed to event.completed),
 * headers(), subject(), notices, and log (every call, in order).
 */
(function () {
  "use strict";
  var config = window.__sealgateOffice || {};
  var log = [];
  var handlers = {};
  var notices = {};
  var headers = {};
  var subject = config.subject || "";
  var version = config.mailbox || "1.15";
  Object.keys(config.headers || {}).forEach(function (name) {
    headers[name] = config.headers[name];
  });

  function answer(method, callback, value, error) {
    log.push(method);
    // Outlook answers asynchronously, never within the call.
    setTimeout(function () {
      callback(error ? { status: "failed", error: { name: "Failure", message: error, code: 9000 } }
                     : { status: "succeeded", value: value });
    }, 0);
  }

  function keyOf(name) {
    return Object.keys(headers).filter(function (key) {
      return key.toLowerCase() === String(name).toLowerCase();
    })[0];
  }

  function atLeast(wanted) {
    var have = version.split(".").map(Number);
    var want = String(wanted).split(".").map(Number);
    return have[0] > want[0] || (have[0] === want[0] && have[1] >= want[1]);
  }

  var notificationMessages = {
    replaceAsync: function (key, details, callback) {
      notices[key] = details;
      answer("notificationMessages.replaceAsync", callback);
    },
    removeAsync: function (key, callback) {
      var known = Object.prototype.hasOwnProperty.call(notices, key);
      delete notices[key];
      answer("notificationMessages.removeAsync", callback, undefined,
             known ? null : "The key wasn't found.");
    }
  };

  function composeItem() {
    return {
      itemType: "message",
      subject: {
        getAsync: function (callback) { answer("subject.getAsync", callback, subject); },
        setAsync: function (value, callback) {
          subject = value;
          answer("subject.setAsync", callback);
        }
      },
      body: {
        getAsync: function (kind, callback) {
          answer("body.getAsync", callback, config.body || "");
        }
      },
      internetHeaders: {
        getAsync: function (names, callback) {
          var found = {};
          names.forEach(function (name) {
            var key = keyOf(name);
            if (key) {
              found[key] = headers[key];
            }
          });
          answer("internetHeaders.getAsync", callback, found);
        },
        setAsync: function (values, callback) {
          Object.keys(values).forEach(function (name) {
            var key = keyOf(name);
            if (key) {
              delete headers[key];
            }
            headers[name] = values[name];
          });
          answer("internetHeaders.setAsync", callback);
        },
        removeAsync: function (names, callback) {
          names.forEach(function (name) {
            var key = keyOf(name);
            if (key) {
              delete headers[key];
            }
          });
          answer("internetHeaders.removeAsync", callback);
        }
      },
      notificationMessages: notificationMessages,
      getAttachmentsAsync: function (callback) {
        answer("getAttachmentsAsync", callback, []);
      },
      getAttachmentContentAsync: function (id, callback) {
        answer("getAttachmentContentAsync", callback, undefined, "no such attachment");
      }
    };
  }

  function readItem() {
    return {
      itemType: "message",
      subject: subject,
      from: { emailAddress: config.from || "", displayName: config.from || "" },
      internetMessageId: config.internetMessageId || "",
      body: {
        getAsync: function (kind, callback) {
          answer("body.getAsync(" + kind + ")", callback,
                 kind === "html" ? config.htmlBody || "" : config.textBody || "");
        }
      },
      getAllInternetHeadersAsync: function (callback) {
        answer("getAllInternetHeadersAsync", callback, config.allHeaders || "");
      },
      notificationMessages: notificationMessages
    };
  }

  window.Office = {
    HostType: { Outlook: "Outlook" },
    PlatformType: { OfficeOnline: "OfficeOnline" },
    AsyncResultStatus: { Succeeded: "succeeded", Failed: "failed" },
    CoercionType: { Text: "text", Html: "html" },
    EventType: { ItemChanged: "olkItemSelectedChanged" },
    MailboxEnums: {
      ItemNotificationMessageType: { InformationalMessage: "informationalMessage",
                                     ErrorMessage: "errorMessage" },
      AttachmentType: { File: "file", Item: "item", Cloud: "cloud" },
      AttachmentContentFormat: { Base64: "base64", Url: "url", Eml: "eml" },
      SendModeOverride: atLeast("1.14") ? { PromptUser: "promptUser" } : undefined
    },
    context: {
      mailbox: {
        item: config.mode === "read" ? readItem() : composeItem(),
        userProfile: { emailAddress: config.user || "" },
        addHandlerAsync: function (type, handler, callback) {
          log.push("mailbox.addHandlerAsync(" + type + ")");
          if (callback) {
            setTimeout(function () { callback({ status: "succeeded" }); }, 0);
          }
        }
      },
      requirements: {
        isSetSupported: function (name, wanted) { return name === "Mailbox" && atLeast(wanted); }
      }
    },
    actions: {
      associate: function (name, handler) {
        log.push("actions.associate(" + name + ")");
        handlers[name] = handler;
      }
    },
    onReady: function (callback) {
      var info = { host: "Outlook", platform: "OfficeOnline" };
      return new Promise(function (resolve) {
        setTimeout(function () {
          if (callback) {
            callback(info);
          }
          resolve(info);
        }, 0);
      });
    }
  };

  window.OfficeRuntime = {
    auth: {
      getAccessToken: function (options) {
        log.push("OfficeRuntime.auth.getAccessToken(" + JSON.stringify(options) + ")");
        return config.token ? Promise.resolve(config.token) :
          Promise.reject({ code: 13001, message: "The user is not signed in." });
      }
    }
  };

  window.__officeStub = {
    handlers: handlers,
    notices: notices,
    log: log,
    headers: function () { return headers; },
    subject: function () { return subject; },
    run: function (name) {
      return new Promise(function (resolve, reject) {
        var handler = handlers[name];
        if (!handler) {
          reject(new Error("no handler registered for " + name));
          return;
        }
        handler({
          source: { id: name },
          completed: function (options) {
            log.push("event.completed(" + name + ")");
            resolve(options === undefined ? null : options);
          }
        });
      });
    }
  };
}());
