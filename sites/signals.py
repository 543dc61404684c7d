"""A changed or deleted site leaves the cache at once (other processes' local copies expire in 30 s)."""

from __future__ import annotations

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from sites.cache import forget_site
from sites.models import Site


@receiver(post_save, sender=Site)
@receiver(post_delete, sender=Site)
def site_changed(sender: type[Site], instance: Site, **kwargs: object) -> None:
    forget_site(instance)
