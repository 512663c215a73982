/*
 * Sealgate add-in commands: the compose-mode Encrypt button (toggleEncrypt) and the on-send
 * check (onMessageSendHandler, Smart Alerts).
 *
 * Loaded two ways, so it must work in both:
 *   - by commands.html, after office.js (Outlook on the web, new Outlook on Windows, Mac);
 *   - directly, as the JavaScript-only runtime of classic Outlook on Windows: no page, no
 *     imports, and Office.onReady never runs there. The handlers are therefore registered at
 *     the top level, and the file is plain ES5 (older Outlook builds run it in Internet
 *     Explorer 11).
 * Every name in the manifest (ExecuteFunction, LaunchEvent FunctionName) must be registered
 * with Office.actions.associate below; the tests check that they match.
 */

/* PLACEHOLDER (the real Encrypt command comes with the next issue): it does not tag the
   draft yet, so it says so on the draft rather than leave the sender believing otherwise. */
function toggleEncrypt(event) {
  var item = Office.context.mailbox.item;
  item.notificationMessages.replaceAsync("sealgateEncrypt", {
    type: Office.MailboxEnums.ItemNotificationMessageType.InformationalMessage,
    message: "Sealgate: the Encrypt button is not active yet. This message is NOT marked " +
             "to be sent securely.",
    icon: "Icon.16x16",
    persistent: false
  }, function () {
    event.completed();
  });
}

/* PLACEHOLDER (the real check, with the server's scan endpoint, comes with the next issue):
   lets every message go. The milter still applies the policy after send. */
function onMessageSendHandler(event) {
  event.completed({ allowEvent: true });
}

// Register at the top level: classic Outlook on Windows never calls Office.onReady here, and
// with SendMode="SoftBlock" an unregistered handler would block every send.
Office.actions.associate("toggleEncrypt", toggleEncrypt);
Office.actions.associate("onMessageSendHandler", onMessageSendHandler);
