//! Programs that embed `bgp-core`. The first ones (a minimal speaker and a route
//! server) need the Speaker API of issue [2/8].
