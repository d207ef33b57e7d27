"""Services: fetch from the store, call the pure core, sign, persist. No HTTP here except
the :mod:`devattest.service.problems` errors they raise."""
