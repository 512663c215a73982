"""The Outlook add-in manifest: valid against Microsoft's schemas (offline), and right in what
the schemas cannot see: resource ids, URLs, event handler names, icon files. The repository's
own manifest.xml is the rendering for the example deployment, and `sealgate manifest` writes it.
"""

from __future__ import annotations

import importlib.util
import os
import re
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from urllib.parse import urlsplit

import pytest
from lxml import etree

from sealgate.config import AddinConfig, Config, OrganisationConfig
from sealgate.errors import ConfigError
from sealgate.server.addin_manifest import (
    EXAMPLE_BASE_URL,
    example_config,
    render_manifest,
)

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "tests" / "data" / "office-addin-manifest"
ADDIN_SRC = ROOT / "addin" / "src"
REGENERATE = ".venv/bin/python -m sealgate.server.addin_manifest > manifest.xml"
CLIENT_ID = "3f2a8c1e-0b7d-4e5f-9a6b-1c2d3e4f5a6b"
MANIFEST_ID = "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b"
# Which Resources collection each kind of resid reference must point into.
RESOURCE_KIND = {
    "Image": "Images",
    "SourceLocation": "Urls", "FunctionFile": "Urls", "Runtime": "Urls", "Override": "Urls",
    "Label": "ShortStrings", "Title": "ShortStrings",
    "Description": "LongStrings",
}
ASSOCIATE = re.compile(r"""Office\.actions\.associate\(\s*["']([^"']+)["']""")


def _parser() -> etree.XMLParser:
    return etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMAS / "OfficeAppManifestV1_1.xsd"), _parser()))


def parse(text: str) -> etree._Element:
    return etree.fromstring(text.encode(), _parser())


def schema_errors(schema: etree.XMLSchema, text: str) -> list[str]:
    schema.validate(parse(text))
    return [f"line {error.line}: {error.message}" for error in schema.error_log]


def _local(element: etree._Element) -> str:
    return etree.QName(element).localname


def _elements(root: etree._Element) -> list[etree._Element]:
    return [element for element in root.iter() if isinstance(element.tag, str)]


def associated_names(js_dir: Path) -> set[str]:
    return {name for path in sorted(js_dir.rglob("*.js"))
            for name in ASSOCIATE.findall(path.read_text(encoding="utf-8"))}


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def manifest_problems(text: str, base_url: str, js_dir: Path = ADDIN_SRC,
                      files: Path | None = ADDIN_SRC) -> list[str]:
    """What Outlook checks and the XSD cannot: resids resolve (to the right kind of resource)
    and are at most 32 characters, every URL is https under base_url (SupportUrl may be any
    https URL; the SSO Resource is the api:// URI of the host), every event or command function
    is registered with Office.actions.associate in the add-in's JavaScript, and every add-in
    file the manifest names exists (icons at the size they are declared)."""
    root = parse(text)
    problems: list[str] = []
    resources: dict[str, tuple[str, str]] = {}  # id -> (collection, value)
    for collection in ("Images", "Urls", "ShortStrings", "LongStrings"):
        for holder in root.iter(f"{{*}}{collection}"):
            for item in holder:
                if not isinstance(item.tag, str):
                    continue
                resource_id = item.get("id", "")
                if resource_id in resources:
                    problems.append(f"resource id {resource_id!r} is defined twice")
                if len(resource_id) > 32:
                    problems.append(f"resource id {resource_id!r} is longer than 32 characters")
                resources[resource_id] = (collection, item.get("DefaultValue", ""))
    used: set[str] = set()
    for element in _elements(root):
        resid = element.get("resid")
        if resid is None:
            continue
        used.add(resid)
        name = _local(element)
        if len(resid) > 32:
            problems.append(f"resid {resid!r} on <{name}> is longer than 32 characters")
        if resid not in resources:
            problems.append(f"resid {resid!r} on <{name}> is not defined in Resources")
        elif name in RESOURCE_KIND and resources[resid][0] != RESOURCE_KIND[name]:
            problems.append(f"resid {resid!r} on <{name}> names a {resources[resid][0]} "
                            f"resource, not {RESOURCE_KIND[name]}")
    problems += [f"resource {unused!r} is never used" for unused in set(resources) - used]

    base = base_url.rstrip("/")
    client_id = next((element.text or "" for element in root.iter("{*}Id")
                      if _local(element.getparent()) == "WebApplicationInfo"), "")
    for element in _elements(root):
        values = [*element.attrib.values(), (element.text or "").strip()]
        for value in (value.strip() for value in values):
            if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", value):
                continue
            name = _local(element)
            if name == "Resource":
                expected = f"api://{urlsplit(base).netloc}/{client_id}"
                if value != expected:
                    problems.append(f"SSO Resource {value!r} is not {expected!r}")
            elif not value.startswith("https://"):
                problems.append(f"URL {value!r} on <{name}> is not https")
            elif name != "SupportUrl" and not value.startswith(base + "/"):
                problems.append(f"URL {value!r} on <{name}> is not under {base}")

    functions = {element.get("FunctionName") for element in root.iter("{*}LaunchEvent")}
    functions |= {(element.text or "").strip() for element in root.iter("{*}FunctionName")}
    associated = associated_names(js_dir)
    problems += [f"function {name!r} is not registered with Office.actions.associate in "
                 f"{js_dir}" for name in sorted(functions - associated)]

    runtimes = {element.get("resid") for element in root.iter("{*}Runtime")}
    for point in root.iter("{*}ExtensionPoint"):
        if point.get("{http://www.w3.org/2001/XMLSchema-instance}type") == "LaunchEvent":
            source = point.find("{*}SourceLocation")
            if source is None or source.get("resid") not in runtimes:
                problems.append("the LaunchEvent's SourceLocation is not one of the Runtimes")

    if files is not None:
        problems += _file_problems(root, resources, base + "/addin/", files)
    return problems


def _file_problems(root: etree._Element, resources: dict[str, tuple[str, str]], prefix: str,
                   files: Path) -> list[str]:
    problems = []
    urls = [value for _, value in resources.values() if value.startswith(prefix)]
    declared: dict[str, set[int]] = {}  # URL -> the pixel sizes it is used at
    for image in root.iter("{*}Image"):
        if image.get("size") and image.get("resid") in resources:
            url = resources[image.get("resid", "")][1]
            declared.setdefault(url, set()).add(int(image.get("size", "0")))
    for name, size in (("IconUrl", 64), ("HighResolutionIconUrl", 128)):
        for element in root.iter(f"{{*}}{name}"):
            urls.append(element.get("DefaultValue", ""))
            declared.setdefault(element.get("DefaultValue", ""), set()).add(size)
    for element in root.iter("{*}SourceLocation"):
        if element.get("DefaultValue"):
            urls.append(element.get("DefaultValue", ""))
    for url in urls:
        if not url.startswith(prefix):
            continue
        path = files / url.removeprefix(prefix)
        if not path.is_file():
            problems.append(f"{url} names {path}, which does not exist")
            continue
        for size in sorted(declared.get(url, set())):
            if png_size(path) != (size, size):
                problems.append(f"{url} is {png_size(path)}, not {size}x{size}")
    return problems


def custom_config(**organisation: str) -> Config:
    return Config(home=Path("/nonexistent"),
                  organisation=OrganisationConfig(**organisation),
                  addin=AddinConfig(client_id=CLIENT_ID, manifest_id=MANIFEST_ID))


# --- the rendered manifest ------------------------------------------------------------------

@pytest.mark.parametrize("base_url", [EXAMPLE_BASE_URL, "https://mail.example.com:8443/sealgate/"])
def test_the_rendered_manifest_is_valid_and_passes_every_check(schema: etree.XMLSchema,
                                                                base_url: str) -> None:
    text = render_manifest(example_config(), base_url)
    assert schema_errors(schema, text) == []
    assert manifest_problems(text, base_url) == []


def test_every_id_and_url_comes_from_the_configuration(schema: etree.XMLSchema) -> None:
    settings = custom_config(name='St. Mary\'s "Care" & <Cure>',
                             support="https://help.stmary.example/addin")
    settings = settings.model_copy(update={"addin": AddinConfig(
        client_id=CLIENT_ID.upper(), manifest_id=MANIFEST_ID)})
    base = "https://gate.stmary.example:8443"
    text = render_manifest(settings, base + "/")
    assert schema_errors(schema, text) == [] and manifest_problems(text, base) == []
    root = parse(text)
    assert root.findtext("{*}Id") == MANIFEST_ID
    assert root.findtext("{*}ProviderName") == 'St. Mary\'s "Care" & <Cure>'
    assert root.find("{*}DisplayName").get("DefaultValue").startswith('St. Mary\'s "Care"')
    assert root.find("{*}SupportUrl").get("DefaultValue") == "https://help.stmary.example/addin"
    sso = next(root.iter("{*}WebApplicationInfo"))
    assert sso.findtext("{*}Id") == CLIENT_ID  # GUIDs are written in lower case
    assert sso.findtext("{*}Resource") == f"api://gate.stmary.example:8443/{CLIENT_ID}"
    assert [scope.text for scope in sso.iter("{*}Scope")] == ["openid", "profile"]
    send = next(root.iter("{*}LaunchEvent"))
    assert (send.get("Type"), send.get("SendMode")) == ("OnMessageSend", "SoftBlock")
    urls = [url.get("DefaultValue") for url in root.iter("{*}Url")]
    assert urls and all(url.startswith(base + "/addin/") for url in urls)


@pytest.mark.parametrize("support", ["", "helpdesk@example.org", "+44 20 7946 0000",
                                     "http://help.example.org"])
def test_support_that_is_not_an_https_url_points_at_the_portal(support: str) -> None:
    root = parse(render_manifest(custom_config(support=support), EXAMPLE_BASE_URL))
    assert root.find("{*}SupportUrl").get("DefaultValue") == EXAMPLE_BASE_URL + "/"


def test_mailbox_requirements_stay_low() -> None:
    root = parse(render_manifest(example_config(), EXAMPLE_BASE_URL))
    base = root.find("{*}Requirements/{*}Sets/{*}Set")
    assert (base.get("Name"), base.get("MinVersion")) == ("Mailbox", "1.1")
    overrides = root.find("{*}VersionOverrides/{*}VersionOverrides/{*}Requirements/{*}Sets")
    assert overrides.get("DefaultMinVersion") == "1.8"  # item.internetHeaders
    assert [s.get("Name") for s in overrides] == ["Mailbox"]


def test_a_long_organisation_name_still_fits_the_schema(schema: etree.XMLSchema) -> None:
    text = render_manifest(custom_config(name="Hospital " * 22), EXAMPLE_BASE_URL)
    assert schema_errors(schema, text) == []


@pytest.mark.parametrize(("base_url", "fragment"), [
    ("http://sealgate.example.org", "must be https://HOST"),
    ("ftp://sealgate.example.org", "must be https://HOST"),
    ("https://", "must be https://HOST"),
    ("sealgate.example.org", "must be https://HOST"),
    ("https://user:pw@sealgate.example.org", "without credentials"),
    ("https://sealgate.example.org/?x=1", "without credentials, query or fragment"),
    ("https://sealgate.example.org:99999", "invalid port"),
])
def test_the_base_url_must_be_https(base_url: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as raised:
        render_manifest(example_config(), base_url)
    assert fragment in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.parametrize(("addin", "fragment"), [
    ({"client_id": "", "manifest_id": MANIFEST_ID}, "addin.client_id is empty"),
    ({"client_id": "my-app", "manifest_id": MANIFEST_ID}, "addin.client_id = 'my-app'"),
    ({"client_id": CLIENT_ID, "manifest_id": ""}, "addin.manifest_id is empty"),
    ({"client_id": CLIENT_ID, "manifest_id": "{x}"}, "must be a GUID"),
])
def test_ids_must_be_guids(addin: dict[str, str], fragment: str) -> None:
    settings = Config(home=Path("/nonexistent"), addin=AddinConfig(**addin))
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        render_manifest(settings, EXAMPLE_BASE_URL)


def test_the_repository_manifest_is_the_example_rendering(schema: etree.XMLSchema) -> None:
    committed = (ROOT / "manifest.xml").read_text(encoding="utf-8")
    expected = render_manifest(example_config(), EXAMPLE_BASE_URL)
    assert committed == expected, (
        f"manifest.xml differs from the rendering for {EXAMPLE_BASE_URL}; regenerate it from "
        f"the repository root with:\n    {REGENERATE}")
    assert schema_errors(schema, committed) == []


# --- the checks can fail ----------------------------------------------------------------------

def _replace(old: str, new: str) -> Callable[[str], str]:
    def change(text: str) -> str:
        assert old in text, old
        return text.replace(old, new)
    return change


LONG_ID = "Encrypt.Label.Of.The.Compose.Form"  # 33 characters


@pytest.mark.parametrize(("change", "problem"), [
    (_replace('<Label resid="Encrypt.Label"/>', '<Label resid="Encrypt.Labl"/>'),
     "resid 'Encrypt.Labl' on <Label> is not defined in Resources"),
    (_replace('"Encrypt.Label"', f'"{LONG_ID}"'), "longer than 32 characters"),
    (_replace('<Title resid="Encrypt.Label"/>', '<Title resid="Encrypt.Tooltip"/>'),
     "names a LongStrings resource, not ShortStrings"),
    (_replace(f"{EXAMPLE_BASE_URL}/addin/commands.js", "http://sealgate.example.org/addin/c.js"),
     "is not https"),
    (_replace(f"{EXAMPLE_BASE_URL}/addin/taskpane.html",
              "https://evil.example.net/addin/taskpane.html"), "is not under"),
    (_replace('FunctionName="onMessageSendHandler"', 'FunctionName="onSend"'),
     "function 'onSend' is not registered"),
    (_replace("<FunctionName>toggleEncrypt</FunctionName>", "<FunctionName>encrypt</FunctionName>"),
     "function 'encrypt' is not registered"),
    (_replace("api://sealgate.example.org/", "api://other.example.org/"), "SSO Resource"),
    (_replace("/addin/assets/icon-80.png", "/addin/assets/icon-64.png"), "not 80x80"),
    (_replace("/addin/taskpane.html", "/addin/readpane.html"), "does not exist"),
    (_replace('<SourceLocation resid="Runtime.Url"/>', '<SourceLocation resid="Commands.Url"/>'),
     "not one of the Runtimes"),
])
def test_the_checker_catches(change: Callable[[str], str], problem: str) -> None:
    text = change(render_manifest(example_config(), EXAMPLE_BASE_URL))
    problems = manifest_problems(text, EXAMPLE_BASE_URL)
    assert any(problem in found for found in problems), problems


def test_the_checker_needs_the_javascript_to_associate_every_function(tmp_path: Path) -> None:
    (tmp_path / "commands.js").write_text(
        'function toggleEncrypt(event) { event.completed(); }\n'
        'Office.actions.associate("toggleEncrypt", toggleEncrypt);\n'
        'Office.actions.associate("togglePortal", toggleEncrypt);\n')
    text = render_manifest(example_config(), EXAMPLE_BASE_URL)
    assert manifest_problems(text, EXAMPLE_BASE_URL, js_dir=tmp_path) == [
        f"function 'onMessageSendHandler' is not registered with Office.actions.associate in "
        f"{tmp_path}"]


def test_the_schema_rejects_what_it_should(schema: etree.XMLSchema) -> None:
    text = render_manifest(example_config(), EXAMPLE_BASE_URL)
    assert schema_errors(schema, text.replace('SendMode="SoftBlock"', 'SendMode="Soft"'))
    assert schema_errors(schema, text.replace("<Id>00000000-0000-4000-8000-000000000001</Id>",
                                              "<Id>not-a-guid</Id>"))
    permissions = "  <Permissions>ReadWriteItem</Permissions>\n"
    moved = text.replace(permissions, "").replace("  <FormSettings>",
                                                  permissions + "  <FormSettings>")
    assert moved != text and schema_errors(schema, moved)  # out of order


# --- the add-in's files -----------------------------------------------------------------------

def _load_make_icons() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_icons",
                                                  ROOT / "addin" / "tools" / "make_icons.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_icons_are_what_make_icons_draws(tmp_path: Path) -> None:
    make_icons = _load_make_icons()
    for path in make_icons.write_icons(tmp_path):
        committed = ADDIN_SRC / "assets" / path.name
        assert committed.read_bytes() == path.read_bytes(), (
            f"{committed} is stale: run .venv/bin/python addin/tools/make_icons.py")
        size = int(path.stem.removeprefix("icon-"))
        assert png_size(committed) == (size, size)


def test_the_javascript_registers_the_handlers_the_manifest_names() -> None:
    assert {"toggleEncrypt", "onMessageSendHandler"} <= associated_names(ADDIN_SRC)
    commands = (ADDIN_SRC / "commands.js").read_text(encoding="utf-8")
    # Every placeholder handler ends the event; an open event blocks the sender's Outlook.
    assert commands.count("event.completed(") >= 2
    assert "=>" not in commands and "import " not in commands  # ES5, no modules


# --- the command --------------------------------------------------------------------------

def _home(tmp_path: Path, addin: str = f'client_id = "{CLIENT_ID}"\n'
                                      f'manifest_id = "{MANIFEST_ID}"\n') -> Path:
    home = tmp_path / "home"
    home.mkdir()
    (home / "sealgate.toml").write_text(
        '[organisation]\nname = "St. Mary Hospital"\n'
        '[server]\nbase_url = "https://gate.stmary.example"\n'
        f"[addin]\n{addin}")
    return home


def sealgate(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SEALGATE_")}
    return subprocess.run([sys.executable, "-m", "sealgate", "--home", str(home), *args],
                          capture_output=True, text=True, env=environ, timeout=60, check=False)


def test_sealgate_manifest_prints_or_writes_the_rendering(tmp_path: Path,
                                                          schema: etree.XMLSchema) -> None:
    home = _home(tmp_path)
    printed = sealgate(home, "manifest", "--base-url", "https://gate.stmary.example")
    assert printed.returncode == 0 and printed.stderr == "", printed.stderr
    assert schema_errors(schema, printed.stdout) == []
    assert manifest_problems(printed.stdout, "https://gate.stmary.example") == []
    assert "<ProviderName>St. Mary Hospital</ProviderName>" in printed.stdout
    assert sealgate(home, "manifest").stdout == printed.stdout  # server.base_url by default

    target = tmp_path / "out" / "manifest.xml"
    target.parent.mkdir()
    written = sealgate(home, "manifest", "--base-url", "https://gate.stmary.example",
                       "--output", str(target))
    assert written.returncode == 0 and f"wrote     {target}" in written.stdout
    assert target.read_text(encoding="utf-8") == printed.stdout


def test_sealgate_manifest_warns_when_sso_would_not_match_the_server(tmp_path: Path) -> None:
    result = sealgate(_home(tmp_path), "manifest", "--base-url", "https://other.example")
    assert result.returncode == 0
    assert result.stderr.startswith("sealgate: warning: ") and "gate.stmary.example" in \
        result.stderr


@pytest.mark.parametrize(("args", "addin", "fragment"), [
    (("--base-url", "http://gate.stmary.example"), None, "must be https://HOST"),
    (("--base-url", "https://gate.stmary.example"), f'manifest_id = "{MANIFEST_ID}"\n',
     "addin.client_id is empty"),
    (("--output", "/nonexistent/dir/manifest.xml"), None, "cannot write"),
])
def test_sealgate_manifest_failures_are_one_line(tmp_path: Path, args: tuple[str, ...],
                                                 addin: str | None, fragment: str) -> None:
    home = _home(tmp_path) if addin is None else _home(tmp_path, addin)
    result = sealgate(home, "manifest", *args)
    assert result.returncode != 0 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sealgate: error: "), result.stderr
    assert fragment in lines[0] and "Traceback" not in result.stderr


def test_sealgate_manifest_help(tmp_path: Path) -> None:
    result = sealgate(tmp_path, "manifest", "--help")
    assert result.returncode == 0 and "--base-url" in result.stdout and "--output" in \
        result.stdout
