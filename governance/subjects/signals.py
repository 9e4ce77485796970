"""Signals other apps use to follow a profile's life (sent inside the service's transaction)."""

from django.dispatch import Signal

# sender=Profile, survivor=Profile, merged=Profile, actor=User|None
profile_merged = Signal()
# sender=Profile, profile=Profile, actor=User|None — after the data key is destroyed
profile_shredded = Signal()
