"""Interop: a Django project made by the real packages, for `tessera import-django`.

Usage:
  python django_project.py create DB_PATH SECRET_KEY
      Makes a Django + DRF authtoken + SimpleJWT token_blacklist database at DB_PATH: users with
      Django's default hasher, argon2 and bcrypt; a group; a DRF key; a live refresh token and a
      blacklisted one, minted by SimpleJWT with SECRET_KEY. Prints what it made as JSON.
  python django_project.py verify SECRET_KEY ACCESS USER_ID
      A DRF view authenticated by SimpleJWT's JWTStatelessUserAuthentication accepts ACCESS and
      sees USER_ID.
"""
import json
import sys

import django
from django.conf import settings

command, *args = sys.argv[1:]
db_path = args[0] if command == "create" else ":memory:"
secret = args[1] if command == "create" else args[0]

settings.configure(
    SECRET_KEY=secret,
    ALLOWED_HOSTS=["*"],
    USE_TZ=True,
    INSTALLED_APPS=[
        "django.contrib.contenttypes",
        "django.contrib.auth",
        "rest_framework",
        "rest_framework.authtoken",
        "rest_framework_simplejwt.token_blacklist",
    ],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": db_path}},
    # Django's default first; the other two as projects enable them.
    PASSWORD_HASHERS=[
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.Argon2PasswordHasher",
        "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
    ],
    REST_FRAMEWORK={
        "DEFAULT_AUTHENTICATION_CLASSES": [
            "rest_framework_simplejwt.authentication.JWTStatelessUserAuthentication"
        ],
        "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    },
    SIMPLE_JWT={"SIGNING_KEY": secret, "ALGORITHM": "HS256"},
)
django.setup()

if command == "create":
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token
    from rest_framework_simplejwt.tokens import RefreshToken

    call_command("migrate", verbosity=0)
    password = "correct horse battery"
    # Ids with a gap, as a real project has after deletions.
    User.objects.create_user("filler", "f@example.com", password).delete()
    alice = User.objects.create_user("alice", "alice@example.com", password, first_name="Alice")
    bob = User(username="bob", email="bob@example.com", password=make_password(password, hasher="argon2"))
    bob.save()
    carol = User(username="carol", email="carol@example.com", password=make_password(password, hasher="bcrypt_sha256"))
    carol.save()
    managers = Group.objects.create(name="managers")
    alice.groups.add(managers)
    key = Token.objects.create(user=alice).key
    live = RefreshToken.for_user(bob)
    revoked = RefreshToken.for_user(carol)
    revoked.blacklist()
    print(json.dumps({
        "users": {u.username: {"id": u.id, "hash": u.password} for u in (alice, bob, carol)},
        "key": key,
        "live_refresh": str(live),
        "blacklisted_refresh": str(revoked),
    }))
elif command == "verify":
    from rest_framework.response import Response
    from rest_framework.test import APIRequestFactory
    from rest_framework.views import APIView

    access, user_id = args[1], args[2]

    class Whoami(APIView):
        def get(self, request):
            return Response({"user_id": str(request.user.id)})

    answer = Whoami.as_view()(APIRequestFactory().get("/", HTTP_AUTHORIZATION=f"Bearer {access}"))
    assert answer.status_code == 200, (answer.status_code, answer.data)
    assert answer.data["user_id"] == user_id, (answer.data, user_id)
    print("ok")
else:
    sys.exit(f"unknown command {command}")
