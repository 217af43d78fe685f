"""Config files (--config-file, --config-dir): every option of every command can be set
in either spelling, and nothing in a file is dropped without a word."""

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from oslo_config import cfg, types

from portieris_webhook import cli
from portieris_webhook.config import config_file, options

SPELLINGS: dict[str, Callable[[cfg.Opt], str]] = {
    "dashes": lambda opt: opt.name,
    "underscores": lambda opt: opt.dest,
}
PIN = "https://notary.example.com:4443=" + "ab" * 32


def groups(command: str) -> tuple[Sequence[cfg.Opt], ...]:
    return cli.COMMANDS[command][1]


def every_opt(command: str) -> list[cfg.Opt]:
    """The options `command` registers, each once (LOG_LEVEL_OPT is in two groups)."""
    return list({opt.dest: opt for group in groups(command) for opt in group}.values())


def settable(command: str) -> list[cfg.Opt]:
    """The options of `command` a config file can set: all but the positional ones, which
    oslo.config never takes from a file (argparse requires them on the command line, whose
    value wins), so a file refuses them."""
    return [opt for opt in every_opt(command) if not opt.positional]


def number(opt: cfg.Opt, index: int) -> int | float:
    """A number within `opt`'s bounds, unlike its default and the other options' values."""
    low = opt.type.min if opt.type.min is not None else 0
    value = low + index + (1 if isinstance(opt.type, types.Integer) else 1.5)
    return value if opt.type.max is None else min(value, opt.type.max)


def value_for(opt: cfg.Opt, index: int) -> object:
    """A valid value of `opt` that is not its default; two values for a repeatable one."""
    kind = opt.type
    if isinstance(kind, types.Boolean):
        value: object = not opt.default
    elif isinstance(kind, types.HostAddress):
        value = f"192.0.2.{index + 1}"
    elif isinstance(kind, types.Integer | types.Float):
        value = number(opt, index)
    elif isinstance(kind, types.String) and kind.choices:
        value = next(choice for choice in kind.choices if choice != opt.default)
    elif opt.multi:
        value = [f"{opt.dest}-one", f"{opt.dest}-two"]
    elif isinstance(kind, types.String):
        value = f"/{opt.dest}-value"
    else:
        raise AssertionError(f"teach value_for a value of {opt.name} ({kind!r})")
    assert value != opt.default, opt.name
    return value


def values_for(command: str) -> dict[str, object]:
    return {opt.dest: value_for(opt, index) for index, opt in enumerate(settable(command))}


def text(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def config_text(command: str, values: dict[str, object], spelling: str) -> str:
    """A config file setting `values`, a repeatable option's key once per value."""
    key = SPELLINGS[spelling]
    lines = ["[DEFAULT]"]
    for opt in settable(command):
        if opt.dest in values:
            value = values[opt.dest]
            for item in value if isinstance(value, list) else [value]:
                lines.append(f"{key(opt)} = {text(item)}")
    return "\n".join(lines) + "\n"


def as_arguments(command: str, values: dict[str, object]) -> list[str]:
    """The command-line arguments that set `values`."""
    arguments = []
    for opt in settable(command):
        value = values[opt.dest]
        if isinstance(value, bool):
            arguments.append(f"--{'' if value else 'no'}{opt.name}")
            continue
        for item in value if isinstance(value, list) else [value]:
            arguments.append(f"--{opt.name}={text(item)}")
    return arguments


def as_arguments_of(values: dict[str, str]) -> list[str]:
    return [f"--{dest.replace('_', '-')}={value}" for dest, value in values.items()]


def positionals(command: str) -> list[str]:
    """Positional arguments `command` parses (a review file, an image, an action)."""
    return [text(value_for(opt, 0)) for opt in every_opt(command) if opt.positional]


def write(tmp_path: Path, name: str, content: str) -> str:
    path = tmp_path / name
    path.write_text(content)
    return str(path)


def parse(command: str, *args: str) -> cfg.ConfigOpts:
    return cli._parse(command, [*args, *positionals(command)], *groups(command))


def parse_file(tmp_path: Path, command: str, content: str, *args: str) -> cfg.ConfigOpts:
    return parse(command, "--config-file", write(tmp_path, "portieris.conf", content), *args)


# --- every option, either spelling


@pytest.mark.parametrize("spelling", SPELLINGS)
@pytest.mark.parametrize("command", cli.COMMANDS)
def test_a_config_file_sets_every_option_of_a_command(tmp_path, command, spelling):
    values = values_for(command)
    conf = parse_file(tmp_path, command, config_text(command, values, spelling))
    assert {dest: conf[dest] for dest in values} == values


@pytest.mark.parametrize("spelling", SPELLINGS)
@pytest.mark.parametrize(
    "settings_from",
    [options.settings_from, options.store_settings_from, options.connection_limits_from],
)
def test_options_from_a_config_file_reach_the_settings(tmp_path, spelling, settings_from):
    values = values_for("serve")
    from_file = settings_from(parse_file(tmp_path, "serve", config_text("serve", values, spelling)))
    from_command_line = settings_from(parse("serve", *as_arguments("serve", values)))
    required = {"tls_cert_file": "/tls.crt", "tls_key_file": "/tls.key"}
    default = settings_from(parse("serve", *as_arguments_of(required)))
    assert from_file == from_command_line
    unchanged = [
        field.name
        for field in dataclasses.fields(from_file)
        if getattr(from_file, field.name) == getattr(default, field.name)
    ]
    assert unchanged == []


@pytest.mark.parametrize("key", ["pinned-trust-root", "pinned_trust_root"])
def test_a_pinned_trust_root_in_a_config_file_is_pinned(tmp_path, key):
    conf = parse_file(tmp_path, "verify", f"[DEFAULT]\n{key} = {PIN}\n")
    assert options.settings_from(conf).pinned_trust_roots == (PIN,)


# --- what oslo.config makes of a file


def test_an_underscore_file_means_what_oslo_config_makes_of_it(tmp_path):
    content = (
        "# a comment\n"
        "[DEFAULT]\n"
        "; another comment\n"
        "ca_file: '/quoted/ca.pem'\n"
        "default_trust_server = https://first.example.com\n"
        "default_trust_server = https://second.example.com\n"
        "manifests = /one\n"
        "\n"
        "manifests = /two\n"
        "  continued\n"
        'namespace = "team-a"\n'
    )
    path = write(tmp_path, "portieris.conf", content)
    plain = cfg.ConfigOpts()
    for group in groups("verify"):
        plain.register_cli_opts(group)
    plain(
        ["--config-file", path, "reg.io/app:1"],
        default_config_files=[],
        default_config_dirs=[],
        use_env=False,
    )
    ours = parse("verify", "--config-file", path)
    for dest in ("ca_file", "default_trust_server", "manifests", "namespace"):
        assert ours[dest] == plain[dest], dest
    assert ours.manifests == ["/one", "/two\ncontinued"]


def test_a_value_that_starts_with_a_dash_stays_a_value(tmp_path):
    conf = parse_file(tmp_path, "verify", "[DEFAULT]\nnamespace = --ca-file\n")
    assert (conf.namespace, conf.ca_file) == ("--ca-file", None)


@pytest.mark.parametrize(("value", "argument"), [("true", "--flag"), ("off", "--noflag")])
def test_a_boolean_option_becomes_its_flag(value, argument):
    # No command has one yet; oslo.config spells a false one --noNAME on the command line.
    entries = [config_file.Entry("DEFAULT", "flag", value)]
    assert list(config_file.arguments("x.conf", entries, [cfg.BoolOpt("flag")])) == [argument]


# --- precedence


def test_a_command_line_option_after_the_file_overrides_it(tmp_path):
    conf = parse_file(tmp_path, "verify", "[DEFAULT]\nca-file = /file.pem\n", "--ca-file=/cli.pem")
    assert conf.ca_file == "/cli.pem"


def test_a_repeatable_option_collects_the_file_and_command_line_values(tmp_path):
    content = "[DEFAULT]\nmanifests = /one\nmanifests = /two\n"
    conf = parse_file(tmp_path, "verify", content, "--manifests", "/three")
    assert conf.manifests == ["/one", "/two", "/three"]


def test_a_later_config_file_overrides_an_earlier_one(tmp_path):
    first = write(tmp_path, "first.conf", "[DEFAULT]\nca-file = /first.pem\nnamespace = a\n")
    second = write(tmp_path, "second.conf", "[DEFAULT]\nca_file = /second.pem\n")
    conf = parse("verify", "--config-file", first, "--config-file", second)
    assert (conf.ca_file, conf.namespace) == ("/second.pem", "a")


def test_a_config_dir_reads_its_conf_files_in_name_order(tmp_path):
    (tmp_path / "conf.d").mkdir()
    write(tmp_path, "conf.d/20-late.conf", "[DEFAULT]\nca-file = /late.pem\n")
    write(tmp_path, "conf.d/10-early.conf", "[DEFAULT]\nca-file = /early.pem\nnamespace = a\n")
    write(tmp_path, "conf.d/30-ignored.txt", "[DEFAULT]\nbogus = 1\n")
    conf = parse("verify", "--config-dir", str(tmp_path / "conf.d"))
    assert (conf.ca_file, conf.namespace) == ("/late.pem", "a")


# --- refused at start, naming the key and the file


@pytest.mark.parametrize(
    ("content", "named"),
    [
        pytest.param("[DEFAULT]\nbogus = 1\n", "bogus", id="unknown key"),
        pytest.param("[DEFAULT]\ntls-cert-file = /tls.crt\n", "tls-cert-file", id="serve's key"),
        pytest.param("[DEFAULT]\nimage = reg.io/other:1\n", "image", id="positional"),
        pytest.param("[DEFAULT]\nconfig-file = /other.conf\n", "config-file", id="nested file"),
        pytest.param("[portieris]\nca-file = /ca.pem\n", "[portieris]", id="other section"),
        pytest.param("[default]\nca-file = /ca.pem\n", "[default]", id="lower-case DEFAULT"),
        pytest.param("[DEFAULT]\nverify-timeout = 0\n", "verify-timeout", id="value below min"),
        pytest.param("[DEFAULT]\nlog-level = LOUD\n", "log-level", id="value not a choice"),
        pytest.param("ca-file = /ca.pem\n", "[DEFAULT]", id="no section"),
    ],
)
def test_a_config_file_entry_verify_cannot_use_is_refused(tmp_path, capsys, content, named):
    path = write(tmp_path, "portieris.conf", content)
    assert cli.main(["verify", "--config-file", path, "reg.io/app:1"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("portieris-webhook verify: error: ")
    assert named in error and path in error


def test_an_unknown_key_in_a_config_dir_file_is_refused_naming_that_file(tmp_path, capsys):
    (tmp_path / "conf.d").mkdir()
    write(tmp_path, "conf.d/10-good.conf", "[DEFAULT]\nca-file = /ca.pem\n")
    bad = write(tmp_path, "conf.d/20-bad.conf", "[DEFAULT]\npinned-trust-roots = x=y\n")
    assert cli.main(["verify", "--config-dir", str(tmp_path / "conf.d"), "reg.io/app:1"]) == 2
    error = capsys.readouterr().err
    assert "pinned-trust-roots" in error and bad in error


@pytest.mark.parametrize("flag", ["--config-file", "--config-dir"])
def test_a_missing_config_file_or_dir_is_refused_naming_it(tmp_path, capsys, flag):
    missing = str(tmp_path / "missing.conf")
    assert cli.main(["verify", flag, missing, "reg.io/app:1"]) == 2
    assert missing in capsys.readouterr().err


def test_an_abbreviated_config_file_option_is_refused_not_read_unchecked(tmp_path, capsys):
    path = write(tmp_path, "portieris.conf", "[DEFAULT]\npinned-trust-root = " + PIN + "\n")
    assert cli.main(["verify", "--config-f", path, "reg.io/app:1"]) == 2
    assert "--config-file" in capsys.readouterr().err
