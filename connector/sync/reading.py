"""What the pages read from the store, gathered for the views to arrange."""

from __future__ import annotations

from connector.store.cursors import AS_OF_PERIOD_CURSOR
from connector.store.state import Store
from connector.views.money import DEFAULT_LOCALE
from connector.views.statement import StatementView, choose, find_rep, team_names, view_of


def load_view(
    store: Store, currency: str, rep: str, period: str | None, locale: str = DEFAULT_LOCALE
) -> StatementView:
    """The statement ``statement`` and the reports page show: rep by id, email or name."""
    users = store.users.all()
    user = find_rep(users, rep)
    statements = store.statements.of_rep(user.id)
    chosen = choose(statements, period, store.cursors.get(AS_OF_PERIOD_CURSOR))
    deal_ids = {line.deal_id for line in chosen.lines if line.deal_id}
    names = {deal.id: deal.name for deal in store.deals.by_id(deal_ids).values()}
    teams = team_names(users, {g.team_id for g in chosen.goals if g.team_id is not None})
    return view_of(user, statements, chosen, currency, names, teams, locale)
