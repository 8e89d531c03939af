from django.contrib import admin

from api import models


class ReadOnlyAdmin(admin.ModelAdmin):
    """Admin for append-only tables: browsable, never editable from here."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(models.Client)
class ClientAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "is_active", "created_at")
    search_fields = ("name",)


@admin.register(models.ClientMembership)
class ClientMembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "client")
    search_fields = ("user__username", "client__name")


@admin.register(models.Strategy)
class StrategyAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "client", "is_active")
    list_filter = ("is_active",)


@admin.register(models.Operation)
class OperationAdmin(admin.ModelAdmin):
    list_display = ("id", "client", "strategy", "symbol", "side", "status", "opened_at")
    list_filter = ("status", "symbol", "side")
    raw_id_fields = ("client", "strategy")


@admin.register(models.StopEvent)
class StopEventAdmin(ReadOnlyAdmin):
    list_display = ("event_seq", "occurred_at", "event_type", "client", "symbol", "source")
    list_filter = ("event_type", "source", "symbol")
    search_fields = ("execution_token", "exchange_order_id")
    date_hierarchy = "occurred_at"
    show_full_result_count = False


@admin.register(models.AuditTransaction)
class AuditTransactionAdmin(ReadOnlyAdmin):
    list_display = ("transaction_id", "created_at", "transaction_type", "status", "symbol")
    list_filter = ("transaction_type", "status", "symbol")
    search_fields = ("transaction_id",)
    date_hierarchy = "created_at"
    show_full_result_count = False


@admin.register(models.Trade)
class TradeAdmin(admin.ModelAdmin):
    list_display = ("trade_id", "symbol", "price", "qty", "time", "is_buyer")
    list_filter = ("symbol", "is_buyer", "is_maker")
    date_hierarchy = "time"
    show_full_result_count = False


@admin.register(models.Portfolio)
class PortfolioAdmin(admin.ModelAdmin):
    list_display = ("client", "timestamp", "total_value", "cash", "quote_asset")
    list_filter = ("client",)
    date_hierarchy = "timestamp"
    show_full_result_count = False


@admin.register(models.Kline)
class KlineAdmin(ReadOnlyAdmin):
    list_display = ("symbol", "interval", "open_time", "open", "high", "low", "close", "volume")
    list_filter = ("symbol", "interval")
    date_hierarchy = "open_time"
    show_full_result_count = False
