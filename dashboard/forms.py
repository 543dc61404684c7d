"""Forms of the owner-facing pages. Validation of names lives in site_services (shared with the
views' service calls); these forms only shape input and show errors next to the right field."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import PasswordResetForm, UserCreationForm, UsernameField
from django.core.exceptions import ValidationError

from dashboard.models import ReportFrequency, Role
from dashboard.site_services import clean_domain, clean_hostnames, clean_site_name, timezone_choices
from security.login_limits import account_email_allowed
from sites.models import Site


class _OwnIds:
    """Forms that share a page get their own id prefix, so each label points at its own input."""

    id_prefix = "id"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", f"{self.id_prefix}_%s")
        super().__init__(*args, **kwargs)


class SignupForm(forms.ModelForm):
    """Step one of sign-up: a username and the address to confirm (see dashboard.signup). The
    address is never checked here: the form must not tell who has an account."""

    email = forms.EmailField(
        max_length=254,
        help_text="We email you a link to confirm it and choose your password. Also for password resets, "
        "invitations and the email reports you opt in to.",
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )

    class Meta:
        model = get_user_model()
        fields = ("username", "email")
        field_classes = {"username": UsernameField}

    def clean_username(self) -> str:
        # As UserCreationForm: names differing only in case are one name (usernames are public handles).
        username = self.cleaned_data["username"]
        model = self._meta.model
        if model.objects.filter(username__iexact=username).exists():
            raise ValidationError(self.instance.unique_error_message(model, ["username"]))
        return username

    def clean_email(self) -> str:
        return get_user_model().objects.normalize_email(self.cleaned_data["email"].strip())


class ConfirmSignupForm(UserCreationForm):
    """Step two, from the emailed link: the password, and the username (taken meanwhile, it can
    be changed here). The address comes from the signed link."""

    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ("username",)

    def __init__(self, *args: Any, email: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.instance.email = email  # saved with the account; the password validators compare with it
        self.fields["username"].widget.attrs.pop("autofocus", None)


class LimitedPasswordResetForm(PasswordResetForm):
    """Django's reset form (it mails active accounts only, and the page says the same either
    way), with at most ACCOUNT_EMAIL_RATE emails per address, whoever asks."""

    def send_mail(
        self,
        subject_template_name: str,
        email_template_name: str,
        context: dict[str, Any],
        from_email: str | None,
        to_email: str,
        html_email_template_name: str | None = None,
    ) -> None:
        if account_email_allowed(to_email):
            super().send_mail(
                subject_template_name, email_template_name, context, from_email, to_email, html_email_template_name
            )


def _timezone_field() -> forms.ChoiceField:
    return forms.ChoiceField(
        label="Time zone",
        choices=timezone_choices,
        initial="UTC",
        help_text="Days in reports and charts start at midnight in this time zone.",
        widget=forms.Select(attrs={"data-guess-timezone": "true"}),
    )


class SiteCreateForm(forms.Form):
    domain = forms.CharField(
        max_length=300,
        help_text="Without https:// or www, like example.com. Subdomains are counted with it.",
        widget=forms.TextInput(
            attrs={"placeholder": "example.com", "autocapitalize": "none", "spellcheck": "false", "inputmode": "url"}
        ),
    )
    name = forms.CharField(
        max_length=200, required=False, help_text="Optional. Shown in your list of sites; the domain if left empty."
    )
    timezone = _timezone_field()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.is_bound:  # the person chose: sites.js must not replace the choice with a guess
            self.fields["timezone"].widget.attrs.pop("data-guess-timezone", None)

    def clean_domain(self) -> str:
        return clean_domain(self.cleaned_data["domain"])

    def clean_name(self) -> str:
        return clean_site_name(self.cleaned_data["name"])


class SiteSettingsForm(forms.ModelForm):
    timezone = _timezone_field()

    class Meta:
        model = Site
        fields = ("name", "timezone", "allowed_hostnames")
        labels = {"allowed_hostnames": "Allowed hostnames"}
        help_texts = {
            "name": "Shown in your list of sites and in email reports.",
            "allowed_hostnames": "Other hostnames that may send pageviews, one per line (like shop.example.net). "
            "The domain and its subdomains are always allowed; '*' allows any hostname.",
        }
        widgets = {"allowed_hostnames": forms.Textarea(attrs={"rows": 4, "spellcheck": "false"})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["timezone"].widget.attrs.pop("data-guess-timezone", None)  # never guess over a saved zone

    def clean_name(self) -> str:
        return clean_site_name(self.cleaned_data["name"])

    def clean_allowed_hostnames(self) -> str:
        return clean_hostnames(self.cleaned_data.get("allowed_hostnames", ""))


class DeleteSiteForm(forms.Form):
    confirm = forms.CharField(
        label="Type the domain to confirm",
        max_length=300,
        widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "none", "spellcheck": "false"}),
    )

    def __init__(self, *args: Any, site: Site, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.site = site
        self.fields["confirm"].label = f"Type {site.domain} to confirm"

    def clean_confirm(self) -> str:
        value = self.cleaned_data["confirm"].strip().lower()
        if value != self.site.domain:
            raise ValidationError(f"That is not {self.site.domain}. Nothing was deleted.")
        return value


class InviteForm(_OwnIds, forms.Form):
    id_prefix = "invite"

    email = forms.EmailField(
        label="Email address",
        max_length=254,  # Invitation.email (Django's EmailField form default is 320)
        widget=forms.EmailInput(attrs={"autocomplete": "off"}),
    )
    role = forms.ChoiceField(
        choices=Role.choices,
        initial=Role.VIEWER,
        help_text="Read-only: sees the stats. Admin: also changes settings, shared links and teammates.",
    )


class RoleForm(_OwnIds, forms.Form):
    id_prefix = "role"

    role = forms.ChoiceField(choices=Role.choices)


class SharedLinkForm(_OwnIds, forms.Form):
    id_prefix = "share"

    name = forms.CharField(
        max_length=100, initial="Shared link", help_text="For you, to tell links apart (like “Investors”)."
    )
    password = forms.CharField(
        required=False,
        max_length=128,
        strip=False,
        help_text="Optional. Visitors of the link must type it to see the stats.",
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )


class ApiKeyForm(_OwnIds, forms.Form):
    id_prefix = "apikey"

    name = forms.CharField(
        label="Key name", max_length=100, help_text="Where the key will be used, like “Grafana” or “reporting script”."
    )


class ReportsForm(_OwnIds, forms.Form):
    id_prefix = "reports"

    frequencies = forms.MultipleChoiceField(
        label="Email me a summary of this site",
        choices=ReportFrequency.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
