"""What `event-manager seed-demo` prints when it is done."""

from rich.table import Table

from api.demo.seed import SeedSummary


def summary_table(summary: SeedSummary) -> Table:
    table = Table(title="Demo data added", show_header=True)
    table.add_column("What")
    table.add_column("Count / value", justify="right")
    table.add_row("Users (verified)", str(summary.users))
    table.add_row("Managers", str(summary.managers))
    table.add_row(
        "Admin", f"{summary.admin_email} ({'created' if summary.admin_created else 'existing'})"
    )
    for status, count in summary.events.items():
        table.add_row(f"Events {status.value}", str(count))
    for reg_status, count in summary.registrations.items():
        table.add_row(f"Registrations {reg_status.value}", str(count))
    table.add_row("Password of the new accounts", summary.password)
    return table
