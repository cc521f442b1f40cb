"""What people read (calc output, statements, the team page), arranged from data handed in."""
