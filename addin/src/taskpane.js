/*
 * Sealgate read-mode task pane. PLACEHOLDER (the secure message's content and status come with
 * the next issue): shows the selected message's subject. Plain ES5, like commands.js.
 */
Office.onReady(function () {
  var item = Office.context.mailbox && Office.context.mailbox.item;
  var subject = item && typeof item.subject === "string" ? item.subject : "";
  // textContent, never innerHTML: the subject is whatever the sender wrote.
  document.getElementById("subject").textContent = subject || "(no subject)";
});
