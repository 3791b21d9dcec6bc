"""Reports people look at: the run's report.html (``run_page``), its charts (``charts``), the
facts they are built from (``collect``, ``predictions``) and the page style every edgeslim HTML
page shares (``html``: the run report and the zoo matrix).

Nothing here is imported by ``import edgeslim``; matplotlib is imported only to draw charts.
"""
