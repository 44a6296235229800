"""Interop: the real Python stack accepts Tessera's tokens.

Usage: python simplejwt_accepts_tessera_tokens.py SIGNING_KEY ACCESS REFRESH
PyJWT decodes the access token with the shared key, and a real DRF view authenticated by
SimpleJWT's JWTStatelessUserAuthentication accepts the access token and refuses the refresh token.
"""
import sys

import django
from django.conf import settings

key, access, refresh = sys.argv[1:4]

settings.configure(
    SECRET_KEY="unused-" + "x" * 40,
    ALLOWED_HOSTS=["*"],
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "rest_framework"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    REST_FRAMEWORK={
        "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework_simplejwt.authentication.JWTStatelessUserAuthentication"],
        "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    },
    SIMPLE_JWT={"SIGNING_KEY": key, "ALGORITHM": "HS256", "USER_ID_FIELD": "id", "USER_ID_CLAIM": "user_id"},
)
django.setup()

import jwt  # noqa: E402
from rest_framework.test import APIRequestFactory  # noqa: E402
from rest_framework.views import APIView  # noqa: E402
from rest_framework.response import Response  # noqa: E402

claims = jwt.decode(access, key, algorithms=["HS256"])
assert claims["token_type"] == "access", claims
# SimpleJWT's five claims, and Tessera's credential version (SimpleJWT ignores it).
assert set(claims) == {"token_type", "exp", "iat", "jti", "user_id", "cv"}, claims
assert claims["cv"] == 0, claims
assert isinstance(claims["user_id"], str) and len(claims["jti"]) == 32, claims


class Whoami(APIView):
    def get(self, request):
        return Response({"user_id": str(request.user.id)})


view = Whoami.as_view()
factory = APIRequestFactory()
ok = view(factory.get("/", HTTP_AUTHORIZATION=f"Bearer {access}"))
assert ok.status_code == 200, (ok.status_code, ok.data)
assert ok.data["user_id"] == claims["user_id"], ok.data
refused = view(factory.get("/", HTTP_AUTHORIZATION=f"Bearer {refresh}"))
assert refused.status_code == 401, (refused.status_code, refused.data)
assert refused.data["messages"][0]["message"] == "Token has wrong type", refused.data
print("interop ok")
