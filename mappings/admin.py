from django.contrib import admin

from integrations.console.tenancy import ScopedModelAdmin

from .models import FieldMapping, UserMapping, ValueMapping


class ValueMappingInline(admin.TabularInline):
    model = ValueMapping
    extra = 0
    fields = ("kind", "source_value", "target_value", "note")


@admin.register(FieldMapping)
class FieldMappingAdmin(ScopedModelAdmin):
    list_display = (
        "source_path",
        "direction",
        "cached_name",
        "asana_field_gid",
        "cached_type",
        "flow",
        "status",
    )
    list_filter = ("flow__tenant", "flow", "direction", "status", "cached_type")
    search_fields = ("source_path", "cached_name", "asana_field_gid")
    readonly_fields = ("status", "status_reason", "last_checked_at")
    inlines = [ValueMappingInline]


@admin.register(ValueMapping)
class ValueMappingAdmin(ScopedModelAdmin):
    list_display = ("tenant", "kind", "source_value", "target_value", "field_mapping")
    list_filter = ("tenant", "kind")
    search_fields = ("source_value", "target_value")


@admin.register(UserMapping)
class UserMappingAdmin(ScopedModelAdmin):
    list_display = (
        "email",
        "display_name",
        "tenant",
        "asana_user_gid",
        "acumatica_employee_id",
        "sage_user",
        "active",
    )
    list_filter = ("tenant", "active")
    search_fields = ("email", "display_name", "acumatica_employee_id", "sage_user")
    autocomplete_fields = ("tenant",)  # the remote TenantAdmin's queryset: the user's tenants only
