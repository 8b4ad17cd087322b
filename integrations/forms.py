"""Console forms. Secrets are write-only: the form says whether one is set, a blank field keeps the
stored value, and the stored plaintext is never rendered back, not even to superusers."""

from __future__ import annotations

from django import forms

from .secrets import secret_field_names

CLEAR_SUFFIX = "__clear"


class SecretWidget(forms.PasswordInput):
    def __init__(self, *args, **kwargs):
        kwargs["render_value"] = False
        super().__init__(*args, **kwargs)


class WriteOnlySecretsForm(forms.ModelForm):
    """ModelForm mixin: every encrypted field becomes a write-only password input."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._secret_names = [n for n in secret_field_names(self._meta.model) if n in self.fields]
        for name in self._secret_names:
            is_set = bool(self.instance.pk and getattr(self.instance, name, ""))
            field = self.fields[name]
            field.widget = SecretWidget(
                attrs={"autocomplete": "new-password", "placeholder": "••••••" if is_set else ""}
            )
            field.required = False
            field.initial = None
            state = "A value is set; leave blank to keep it." if is_set else "Not set."
            field.help_text = f"{state} {field.help_text or ''}".strip()
            if is_set:
                self.fields[name + CLEAR_SUFFIX] = forms.BooleanField(
                    required=False, label=f"Clear {field.label or name}"
                )

    def _post_clean(self):
        # Blank means "keep": put the stored value back before the model instance is updated.
        if self.instance.pk:
            stored = type(self.instance)._base_manager.filter(pk=self.instance.pk).first()
            for name in self._secret_names:
                if self.cleaned_data.get(name + CLEAR_SUFFIX):
                    self.cleaned_data[name] = ""
                elif not self.cleaned_data.get(name) and stored is not None:
                    self.cleaned_data[name] = getattr(stored, name)
        super()._post_clean()

    def has_changed(self) -> bool:
        return super().has_changed()
