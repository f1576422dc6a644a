# firmware rules come with the firmware stage
