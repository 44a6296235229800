"""Runs the README's DRF settings in a real DRF service and checks Tessera's tokens with them.

Usage: python drf_runs_readme_settings.py SETTINGS_CODE [PERMISSION_CODE]
The tokens come from the environment: TOKEN (a member of "manager") is admitted, REFRESH_TOKEN is
refused as SimpleJWT refuses it, and with PERMISSION_CODE (defining InManagerGroup) OUTSIDER_TOKEN
is refused by the group permission while TOKEN passes it.
"""
import os
import sys

import django
from django.conf import settings

readme = {"os": os}
exec(sys.argv[1], readme)
settings.configure(
    SECRET_KEY="unused-" + "x" * 40,
    ALLOWED_HOSTS=["*"],
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "rest_framework"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    REST_FRAMEWORK=readme["REST_FRAMEWORK"],
    SIMPLE_JWT=readme["SIMPLE_JWT"],
)
django.setup()

from rest_framework.response import Response  # noqa: E402
from rest_framework.test import APIRequestFactory  # noqa: E402
from rest_framework.views import APIView  # noqa: E402


class Whoami(APIView):
    def get(self, request):
        return Response({"user_id": str(request.user.id), "username": request.user.username})


def call(view, token):
    return view(APIRequestFactory().get("/", HTTP_AUTHORIZATION=f"Bearer {token}"))


ok = call(Whoami.as_view(), os.environ["TOKEN"])
assert ok.status_code == 200, (ok.status_code, ok.data)
print("admitted", ok.data["user_id"], ok.data["username"])
refused = call(Whoami.as_view(), os.environ["REFRESH_TOKEN"])
assert refused.status_code == 401, (refused.status_code, refused.data)
assert refused.data["messages"][0]["message"] == "Token has wrong type", refused.data

if len(sys.argv) > 2:
    exec(sys.argv[2], readme)

    class Reports(APIView):
        permission_classes = [readme["InManagerGroup"]]

        def get(self, request):
            return Response({"reports": []})

    member = call(Reports.as_view(), os.environ["TOKEN"])
    assert member.status_code == 200, (member.status_code, member.data)
    outsider = call(Reports.as_view(), os.environ["OUTSIDER_TOKEN"])
    assert outsider.status_code == 403, (outsider.status_code, outsider.data)
    print("group permission ok")
print("drf ok")
