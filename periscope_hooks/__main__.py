from periscope_hooks.main import main

raise SystemExit(main())
