"""Create or update a user and print their API token key as the last line."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email

from users.services import UserConflict, user_create_or_update


class Command(BaseCommand):
    help = "Create or update a user, join or create an organization, and print the user's API token."

    def add_arguments(self, parser):
        parser.add_argument("--email", required=True)
        parser.add_argument("--password", required=True)
        parser.add_argument("--username", default="")
        parser.add_argument("--organization", default="")
        parser.add_argument("--token", default="", help="Set the token to this key (at most 40 characters).")

    def handle(self, *args, email, password, username, organization, token, **options):
        try:
            validate_email(email)
        except ValidationError as exc:
            raise CommandError(f"Invalid email: {email}") from exc
        if token and (len(token) > 40 or not token.isprintable() or " " in token):
            raise CommandError("--token must be at most 40 printable characters without spaces.")
        try:
            user, key = user_create_or_update(
                email=email, password=password, username=username, organization=organization, token=token
            )
        except UserConflict as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"User {user.username} <{user.email}> in organization {user.active_organization}")
        self.stdout.write(key.key)
