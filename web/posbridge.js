// posbridge.js: placeholder, see step 2
