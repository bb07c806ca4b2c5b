"""``arscore web``: the collectors' worklist, a downstream consumer of ``ar.scores`` and
``ar.alerts``.

It is built the way any consumer of the score topic would be: its own consumer group,
no access to worker state. :mod:`.materialiser` applies records to a database
(:mod:`.store`, schema in :mod:`.schema`), storing the applied offsets in the same
transaction as the rows; :mod:`.api` and :mod:`.pages` serve the JSON API and the
server-rendered pages from that database; :mod:`.auth` guards both with
``ARSCORE_WEB_TOKEN``.
"""
