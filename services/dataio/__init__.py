"""Data in and out: `commissioning import` (arrangements from CSV/Excel, sent as signed batches to
`POST /events`) and `commissioning export ocds` (the canonical streams as Open Contracting data)."""
