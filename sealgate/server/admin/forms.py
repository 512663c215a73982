"""The console's sign-in forms (Flask-WTF: every form carries a CSRF token)."""

from __future__ import annotations

from wtforms import EmailField, HiddenField, PasswordField, StringField
from wtforms.validators import InputRequired, Length

from sealgate.server.portal.forms import Form


class SignInForm(Form):
    address = EmailField("Email address", validators=[InputRequired(), Length(max=320)])
    password = PasswordField("Password", validators=[InputRequired(), Length(max=1024)])
    next = HiddenField()


class CodeForm(Form):
    code = StringField("Code from your authenticator app",
                       validators=[InputRequired(), Length(max=12)])
    next = HiddenField()


class ConfirmForm(Form):
    """A button that changes something: only the CSRF token."""
