"use strict";
/* What the add-in's files must hold to run where Outlook runs them: the same shared helpers in
   both scripts, ES5 syntax, and the ids the manifest gives. */
const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");

const SRC = path.join(__dirname, "..", "src");
const MANIFEST = path.join(__dirname, "..", "..", "manifest.xml");
const read = (name) => fs.readFileSync(path.join(SRC, name), "utf8");

function sharedBlock(source) {
  const begin = source.indexOf("// ---- shared by commands.js and taskpane.js: begin");
  const end = source.indexOf("// ---- shared by commands.js and taskpane.js: end ----");
  assert.ok(begin >= 0 && end > begin, "the shared block is marked");
  return source.slice(begin, end);
}

test("commands.js and taskpane.js carry the same shared helpers (token, API calls)", () => {
  assert.equal(sharedBlock(read("taskpane.js")), sharedBlock(read("commands.js")));
});

test("the scripts are plain ES5 syntax: classic Outlook runs commands.js on its own", () => {
  const later = [
    ["an arrow function", /=>/], ["a template literal", /`/], ["let or const", /\b(let|const)\s/],
    ["async or await", /\b(async|await)\b/], ["a module statement", /^\s*(import|export)\b/m],
    ["a class", /\bclass\s+[A-Z]/], ["a spread", /\.\.\.[A-Za-z_(]/],
  ];
  for (const name of ["commands.js", "taskpane.js"]) {
    const code = read(name);
    const uncommented = code.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'\\])\/\/.*$/gm, "$1");
    for (const [what, pattern] of later) {
      assert.ok(!pattern.test(uncommented), `${name} uses ${what}`);
    }
    for (const [what, pattern] of [["an arrow function", /=>/], ["an import", /import /]]) {
      // tests/unit/test_manifest.py looks at the whole text, comments included
      assert.ok(!pattern.test(code), `${name} has ${what} even in a comment`);
    }
    // It parses as a classic script, not only as a module.
    assert.doesNotThrow(() => new Function(code), name);
  }
});

test("the on-send dialog's button runs the manifest's Encrypt button", () => {
  const manifest = fs.readFileSync(MANIFEST, "utf8");
  const control = /<Control xsi:type="Button" id="([^"]+)">(?:(?!<\/Control>)[\s\S])*<FunctionName>toggleEncrypt<\/FunctionName>/
    .exec(manifest);
  assert.ok(control, "the manifest has a button running toggleEncrypt");
  assert.match(read("commands.js"), new RegExp(`var ENCRYPT_COMMAND_ID = "${control[1]}";`));
});

test("every function the manifest names is registered by commands.js", () => {
  const manifest = fs.readFileSync(MANIFEST, "utf8");
  const named = new Set([...manifest.matchAll(/<FunctionName>([^<]+)<\/FunctionName>|FunctionName="([^"]+)"/g)]
    .map((m) => m[1] || m[2]));
  const commands = read("commands.js");
  for (const name of named) {
    assert.match(commands, new RegExp(`Office\\.actions\\.associate\\("${name}", `), name);
  }
  assert.ok(named.size >= 2);
});

test("the pages load office.js from Microsoft's CDN, then their own script, nothing inline", () => {
  for (const [page, script] of [["commands.html", "commands.js"], ["taskpane.html", "taskpane.js"]]) {
    const html = read(page);
    const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)];
    assert.deepEqual(scripts.map((m) => /src="([^"]+)"/.exec(m[1])[1]),
                     ["https://appsforoffice.microsoft.com/lib/1/hosted/office.js", script]);
    assert.ok(scripts.every((m) => m[2].trim() === ""), `${page} has an inline script`);
    assert.ok(!/\sstyle=|<style/.test(html), `${page} has an inline style`);
  }
});
