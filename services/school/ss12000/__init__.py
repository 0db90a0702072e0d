"""The SS 12000 intake: school starts and ends read from the school organisers' own systems.

settings  the sources (OBRUTEN_SCHOOL_SS12000_SOURCES) and their validation
client    one source over HTTP: auth, paging, the standard's entities
matching  the placed children's keyed hashes, and recognising them among a source's pupils
recording what a matched enrolment does to the school records (through services.school.service)
sync      one sync of one source, its position, its audit row; the per-source loops and metrics
push      the `/subscriptions` callback that wakes a source's loop early
models    the intake's tables
"""
