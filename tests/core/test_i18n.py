"""The admin speaks Japanese to a Japanese browser and English otherwise."""

import pytest

from tests.accounts import OtpVerifiedClient
from tests.factories import make_profile


@pytest.mark.django_db
@pytest.mark.parametrize(("language", "label"), [("ja", "氏名（カナ）"), ("en", "Name (kana)")])
def test_profile_page_in_the_browser_language(language, label, workspaces, role_users):
    profile = make_profile(workspaces[0], locale="ja_JP")
    client = OtpVerifiedClient(HTTP_ACCEPT_LANGUAGE=language)
    client.force_login(role_users["dpo"])
    page = client.get(f"/admin/subjects/profile/{profile.pk}/change/").content.decode()
    assert label in page
