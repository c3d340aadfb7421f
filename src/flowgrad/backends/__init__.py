"""Array backends: one module per array library, behind the seam in :mod:`flowgrad._backend`.

Each backend module exports the same names, which the seam dispatches to by the type of an
array (NumPy's first, without a lookup):

* ``name`` (the device type: ``"cpu"``, ``"cuda"``, ``"strict"``), ``ndarray`` (the array
  type), ``xp`` (the array namespace ops receive: the Python array API standard's names,
  taking flowgrad's dtypes, which are NumPy dtypes, and ``device=`` on creation functions);
* ``available()`` (``None`` or why not), ``device_count()``, ``native_device(index)``,
  ``device_index(arr)``, ``use(index)`` (make the device current), ``synchronize(index)``;
* ``from_host(arr, index)``, ``to_host(arr)``, ``host_dtype(dtype)``, ``native_dtype(dtype)``;
* what the standard lacks: ``scatter_add``, ``index_put``, ``sliding_windows``, ``einsum``,
  ``is_private``, ``expand``, ``copy``, ``channels_first`` (memory layout), ``shares_memory``;
* ``quiet()`` / ``loud(token)`` (silence floating-point warnings; no-ops where there are none).

``numpy_backend`` is imported with flowgrad; the others load on first use of their device.
"""
