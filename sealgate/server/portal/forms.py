"""The portal's forms (Flask-WTF: every one carries a CSRF token)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import MultipleFileField
from wtforms import (
    BooleanField,
    EmailField,
    HiddenField,
    IntegerField,
    PasswordField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import EqualTo, InputRequired, Length, NumberRange


class Form(FlaskForm):  # type: ignore[misc]  # Flask-WTF ships no type information
    pass


ADDRESS = [InputRequired(), Length(max=320)]


class AddressForm(Form):
    address = EmailField(_l("Your email address"), validators=ADDRESS)
    next = HiddenField()


class CodeForm(Form):
    address = HiddenField(validators=ADDRESS)
    code = StringField(_l("Code from the email"), validators=[InputRequired(), Length(max=12)])
    next = HiddenField()


class PasswordSignInForm(Form):
    address = EmailField(_l("Email address"), validators=ADDRESS)
    password = PasswordField(_l("Password"), validators=[InputRequired(), Length(max=256)])
    next = HiddenField()


class RegisterForm(Form):
    address = EmailField(_l("Email address"), validators=ADDRESS)
    password = PasswordField(_l("Choose a password (at least 12 characters)"),
                             validators=[InputRequired(), Length(max=256)])
    confirm = PasswordField(_l("Type the password again"), validators=[
        InputRequired(), EqualTo("password", message=_l("The two passwords differ."))])


class NewPasswordForm(Form):
    password = PasswordField(_l("New password (at least 12 characters)"),
                             validators=[InputRequired(), Length(max=256)])
    confirm = PasswordField(_l("Type the password again"), validators=[
        InputRequired(), EqualTo("password", message=_l("The two passwords differ."))])


class SecondFactorForm(Form):
    code = StringField(_l("Code from your authenticator app, or a recovery code"),
                       validators=[InputRequired(), Length(max=32)])
    next = HiddenField()


class TotpSetupForm(Form):
    code = StringField(_l("The 6-digit code your app shows now"),
                       validators=[InputRequired(), Length(max=12)])
    next = HiddenField()


class AnswerForm(Form):
    answer = PasswordField(_l("Your answer"), validators=[InputRequired(), Length(max=200)])


class ReplyForm(Form):
    text = TextAreaField(_l("Your reply"), validators=[InputRequired(), Length(max=200_000)])
    attachments = MultipleFileField(_l("Attach files"))
    reply_all = BooleanField(_l("Reply to everyone"))


class ConfirmForm(Form):
    """A button that changes something: it needs only its CSRF token."""


class ExpiryForm(Form):
    days = IntegerField(_l("Days from now (0 removes the expiry)"),
                        validators=[InputRequired(), NumberRange(min=0, max=3650)])


class QuestionForm(Form):
    recipient = SelectField(_l("Recipient"), coerce=int)
    question = StringField(_l("Question"), validators=[InputRequired(), Length(max=200)])
    answer = StringField(_l("Answer (tell the recipient by phone or in person)"),
                         validators=[InputRequired(), Length(min=2, max=200)])
