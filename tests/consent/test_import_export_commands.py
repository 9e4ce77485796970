"""``import_consents`` and ``export_consent_proof``: bad input is reported, never a traceback."""

from __future__ import annotations

import csv
import io
import uuid

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from consent.models import ConsentEvent

pytestmark = pytest.mark.django_db
HEADER = "workspace,identity_kind,identity_value,purpose,state\n"
GOOD = "shop-jp,email,good@example.jp,analytics,given\n"


def run_import(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command("import_consents", *[str(a) for a in args], stdout=out, stderr=err)
    return out.getvalue()


def report_rows(path):
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("dry_run", [False, True])
def test_import_rejects_rows_with_too_few_or_too_many_fields(tmp_path, site, dry_run):
    source = tmp_path / "consents.csv"
    source.write_text(
        HEADER
        + "shop-jp,email,imp3@example.jp,analytics\n"  # one field short
        + GOOD
        + "shop-jp,email,imp4@example.jp,analytics,given,surplus@example.jp\n"  # one field too many
        + "shop-jp,shifted@example.jp,analytics,given\n",  # identity_kind left out: columns shifted
        encoding="utf-8",
    )
    output = run_import(source, *(["--dry-run"] if dry_run else []))
    assert "3 row(s) rejected" in output
    assert ConsentEvent.objects.filter(method="import").count() == (0 if dry_run else 1)
    rows = report_rows(tmp_path / "consents.rejected.csv")
    assert [(r["line"], r["code"]) for r in rows] == [
        ("2", "wrong_field_count"), ("4", "wrong_field_count"), ("5", "wrong_field_count")]
    assert "4 field(s)" in rows[0]["reason"] and "6 field(s)" in rows[1]["reason"]
    report = (tmp_path / "consents.rejected.csv").read_text(encoding="utf-8")
    for value in ("imp3@example.jp", "surplus@example.jp", "shifted@example.jp"):
        assert value not in report  # identity values never go to the report, shifted or not


def test_import_of_a_shift_jis_file_needs_the_encoding_option(tmp_path, site):
    source = tmp_path / "excel.csv"
    source.write_bytes((HEADER + GOOD + "ショップ,email,hanako@example.jp,analytics,given\n").encode("cp932"))
    with pytest.raises(CommandError, match="not valid utf-8-sig.*near line 3.*--encoding cp932"):
        run_import(source)
    assert ConsentEvent.objects.count() == 0  # nothing recorded before the decoding error was found
    output = run_import(source, "--encoding", "cp932")
    assert "2 row(s) read, 1 recorded" in output and "1 row(s) rejected" in output
    for codec in ("no-such-codec", "base64"):
        with pytest.raises(CommandError, match="Unknown text encoding"):
            run_import(source, "--encoding", codec)


def test_import_checks_the_rejected_report_location_before_importing(tmp_path, site):
    source = tmp_path / "consents.csv"
    source.write_text(HEADER + GOOD + "nowhere,email,b@example.jp,analytics,given\n", encoding="utf-8")
    with pytest.raises(CommandError, match="does not exist"):
        run_import(source, "--rejected", tmp_path / "missing" / "x.csv")
    with pytest.raises(CommandError, match="is a directory"):
        run_import(source, "--rejected", tmp_path)
    with pytest.raises(CommandError, match="the input file"):
        run_import(source, "--rejected", source)
    assert ConsentEvent.objects.count() == 0
    assert source.read_text(encoding="utf-8").startswith(HEADER)


def test_import_rejects_values_the_api_rejects(tmp_path, site):
    source = tmp_path / "consents.csv"
    source.write_text(
        "workspace,identity_kind,identity_value,purpose,state,jurisdiction,language,notice_url,purpose_version\n"
        "shop-jp,email,a@example.jp,analytics,given,Japan,,,\n"
        "shop-jp,email,b@example.jp,analytics,given,,,not a url,\n"
        "shop-jp,email,c@example.jp,analytics,given,,ja-JP-x-very-long,,\n"
        "shop-jp,email,d@example.jp,analytics,given,,,,abc\n"
        "shop-jp,email,e@example.jp,analytics,given,,,,0\n"
        "shop-jp,fax,f@example.jp,analytics,given,,,,\n"
        "shop-jp,email,g@example.jp,analytics,maybe,,,,\n"
        "shop-jp,email,ok@example.jp,analytics,given,JP,ja,https://shop.example/privacy,1\n",
        encoding="utf-8",
    )
    output = run_import(source)
    assert "7 row(s) rejected" in output
    rows = {r["line"]: r for r in report_rows(tmp_path / "consents.rejected.csv")}
    assert rows["2"]["code"] == "invalid_choice" and rows["2"]["reason"].startswith("jurisdiction:")
    assert rows["3"]["code"] == "invalid" and rows["3"]["reason"].startswith("notice_url:")
    assert rows["4"]["code"] == "max_length" and rows["4"]["reason"].startswith("language:")
    assert rows["5"]["reason"].startswith("purpose_version:")
    assert rows["6"]["code"] == "min_value" and rows["6"]["reason"].startswith("purpose_version:")
    assert rows["7"]["code"] == "invalid_choice" and rows["7"]["reason"].startswith("identity_kind:")
    assert rows["8"]["code"] == "invalid_choice" and rows["8"]["reason"].startswith("state:")
    event = ConsentEvent.objects.get(method="import")
    assert (event.jurisdiction, event.language, event.notice_url) == ("JP", "ja", "https://shop.example/privacy")


def test_import_without_rejections_removes_a_stale_report(tmp_path, site):
    source = tmp_path / "consents.csv"
    stale = tmp_path / "consents.rejected.csv"
    stale.write_text("line,code,reason\n2,unknown_workspace,old run\n", encoding="utf-8")
    source.write_text(HEADER + GOOD, encoding="utf-8")
    output = run_import(source)
    assert not stale.exists()
    assert "No row rejected" in output and "removed the old report" in output
    output = run_import(source)
    assert "No row rejected" in output and "removed" not in output
    other = tmp_path / "notes.csv"
    other.write_text("not,a,report\n", encoding="utf-8")
    output = run_import(source, "--rejected", other)
    assert "left" in output and other.read_text(encoding="utf-8") == "not,a,report\n"


def test_import_help_explains_the_options():
    from consent.management.commands.import_consents import Command

    text = Command().create_parser("manage.py", "import_consents").format_help()
    for option in ("--dry-run", "--rejected", "--encoding", "cp932", "utf-8-sig"):
        assert option in text


@pytest.mark.parametrize("profile_id", ["abc", "999999", str(uuid.uuid4())])
def test_export_consent_proof_of_an_unknown_profile_is_a_command_error(db, profile_id):
    with pytest.raises(CommandError, match="No such profile"):
        call_command("export_consent_proof", profile_id, stdout=io.StringIO())


def test_export_consent_proof_checks_the_output_directory(server, site, tmp_path):
    from governance.subjects.selectors import profile_get_by_identity

    server.post("/api/v1/consent/events", {"identity": {"kind": "email", "value": "taro@example.jp"},
                                           "purpose": "analytics", "state": "given"}, format="json")
    profile = profile_get_by_identity(workspace=site.workspace, kind="email", value="taro@example.jp")
    with pytest.raises(CommandError, match="does not exist"):
        call_command("export_consent_proof", str(profile.pk), "--out", str(tmp_path / "no" / "p.json"),
                     stdout=io.StringIO())
    call_command("export_consent_proof", str(profile.pk), "--out", str(tmp_path / "p.json"), stdout=io.StringIO())
    assert '"events_intact": true' in (tmp_path / "p.json").read_text(encoding="utf-8")
    from consent.management.commands.export_consent_proof import Command

    text = Command().create_parser("manage.py", "export_consent_proof").format_help()
    assert "--out" in text and "UUID" in text
