from __future__ import annotations

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from collector.sites import forget_site
from dashboard.models import Site


@receiver(post_save, sender=Site)
@receiver(post_delete, sender=Site)
def site_changed(sender: type[Site], instance: Site, **kwargs: object) -> None:
    forget_site(instance)
