from django.urls import path

from . import views

app_name = "recallbots"

urlpatterns = [
    path("launch/", views.launch, name="launch"),
    path("bots/<uuid:public_id>/", views.bot_detail, name="bot"),
    path("recall/webhooks/bot-status/", views.recall_webhook, name="recall-webhook"),
    path("api/bots/", views.BotListCreateView.as_view(), name="api-bots"),
    path("api/bots/<uuid:public_id>/", views.BotDetailView.as_view(), name="api-bot"),
]
